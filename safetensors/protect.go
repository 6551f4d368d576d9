package safetensors

import (
	"runtime"
	"runtime/debug"
)

// Protect runs fn so that a page fault on the file's mapping inside it — the
// file was truncated, or rewritten in place, by another process after Open —
// becomes a *ChangedError (errors.Is ErrChanged) instead of a crash of the
// whole process. Every read this package makes from a mapping (ReadPart,
// ReadPartAt, ReadRanges) is already protected; Protect is for the slices Data
// hands out, which are the mapping itself:
//
//	err := f.Protect(func() error {
//		data, err := f.Data(name)
//		if err != nil {
//			return err
//		}
//		sum = sha256.Sum256(data)
//		return nil
//	})
//
// Only a fault on the calling goroutine is caught (the Go runtime arms the
// protection per goroutine), so fn must read the mapping itself rather than
// hand it to another goroutine. A panic that is not a memory fault passes
// through unchanged.
func (f *File) Protect(fn func() error) (err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		p := recover()
		if p == nil {
			return
		}
		if re, ok := p.(runtime.Error); ok {
			if fault, ok := re.(interface{ Addr() uintptr }); ok {
				err = &ChangedError{Path: f.path, Addr: fault.Addr()}
				return
			}
		}
		panic(p)
	}()
	return fn()
}
