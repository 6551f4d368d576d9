package safetensors

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"testing"
)

// FuzzOpen feeds arbitrary bytes to the header parser, through NewReader
// and through Open (the mmap path) of the same bytes written to a file.
// A rejection must be a *FormatError matching ErrFormat, the same from
// both; an accepted file must give the same tensors and bytes from both,
// every accessor must stay inside the data without panicking, and the
// file written again by the Writer from what was read (as archive/zip's
// fuzzer does) must open to the same tensors, bytes and metadata.
func FuzzOpen(f *testing.F) {
	seeds, _ := filepath.Glob(filepath.Join("testdata", "*.safetensors"))
	for _, p := range seeds {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, b []byte) {
		sf, err := NewReader(bytes.NewReader(b), int64(len(b)))
		tmp, werr := os.CreateTemp(dir, "fuzz-*.safetensors")
		if werr != nil {
			t.Fatal(werr)
		}
		defer os.Remove(tmp.Name())
		if _, werr := tmp.Write(b); werr != nil {
			t.Fatal(werr)
		}
		if werr := tmp.Close(); werr != nil {
			t.Fatal(werr)
		}
		mf, merr := Open(tmp.Name())
		if err != nil {
			var fe *FormatError
			if !errors.As(err, &fe) || !errors.Is(err, ErrFormat) {
				t.Fatalf("NewReader: %v (%T) is not a *FormatError", err, err)
			}
			if merr == nil {
				mf.Close()
				t.Fatalf("Open accepts what NewReader rejects: %v", err)
			}
			var mfe *FormatError
			if !errors.As(merr, &mfe) || mfe.Reason != fe.Reason {
				t.Fatalf("Open: %v, NewReader: %v", merr, err)
			}
			return
		}
		if merr != nil {
			t.Fatalf("Open rejects what NewReader accepts: %v", merr)
		}
		defer mf.Close()
		mapped := slices.Clone(mf.Tensors())
		for i := range mapped {
			if mapped[i].File != tmp.Name() {
				t.Fatalf("tensor %q of the opened file names file %q", mapped[i].Name, mapped[i].File)
			}
			mapped[i].File = "" // NewReader's tensors name no file
		}
		if !reflect.DeepEqual(sf.Tensors(), mapped) {
			t.Fatalf("Open and NewReader see different tensors")
		}
		if !mf.Mapped() && haveMmap {
			t.Fatalf("Open did not map the file")
		}
		for _, ti := range mf.Tensors() {
			want, err1 := sf.Data(ti.Name)
			got, err2 := mf.Data(ti.Name)
			if err1 != nil || err2 != nil || !bytes.Equal(want, got) {
				t.Fatalf("Data(%q) differs between the mapped file and the reader (%v, %v)", ti.Name, err1, err2)
			}
		}
		var total int64
		for _, ti := range sf.Tensors() {
			if ti.Begin < 0 || ti.End > sf.TotalBytes() || ti.Offset+ti.Size() > int64(len(b)) {
				t.Fatalf("tensor %q [%d, %d) escapes data of %d bytes", ti.Name, ti.Begin, ti.End, sf.TotalBytes())
			}
			total += ti.Size()
			data, err := sf.Data(ti.Name)
			if err != nil || int64(len(data)) != ti.Size() {
				t.Fatalf("Data(%q): %d bytes, %v", ti.Name, len(data), err)
			}
			for axis := range ti.Shape {
				for _, n := range []int{1, 2, 3} {
					size, err := ti.PartSize(axis, n)
					if err != nil {
						continue
					}
					var got int64
					for k := range n {
						dst := make([]byte, size)
						if _, err := sf.ReadPart(ti.Name, axis, n, k, dst); err != nil {
							t.Fatalf("ReadPart(%q, %d, %d, %d): %v", ti.Name, axis, n, k, err)
						}
						got += size
					}
					if got != ti.Size() {
						t.Fatalf("parts of %q along %d hold %d bytes, want %d", ti.Name, axis, got, ti.Size())
					}
				}
			}
		}
		if total != sf.TotalBytes() {
			t.Fatalf("tensors hold %d bytes, data has %d", total, sf.TotalBytes())
		}
		roundTrip(t, dir, sf)
	})
}

// roundTrip writes the tensors and metadata of sf to a new file and checks
// that it reads back the same.
func roundTrip(t *testing.T, dir string, sf *File) {
	var tds []TensorData
	for _, ti := range sf.Tensors() {
		data, err := sf.Data(ti.Name)
		if err != nil {
			t.Fatal(err)
		}
		tds = append(tds, TensorData{Name: ti.Name, Dtype: ti.Dtype, Shape: ti.Shape, Data: data})
	}
	path := filepath.Join(dir, "again.safetensors")
	defer os.Remove(path)
	if err := WriteFile(path, tds, sf.Metadata()); err != nil {
		t.Fatalf("the writer refuses what the reader accepted: %v", err)
	}
	again, err := Open(path)
	if err != nil {
		t.Fatalf("the writer's file does not open: %v", err)
	}
	defer again.Close()
	if len(again.Tensors()) != len(tds) {
		t.Fatalf("wrote %d tensors, read %d", len(tds), len(again.Tensors()))
	}
	for _, td := range tds {
		ti, ok := again.Tensor(td.Name)
		if !ok || ti.Dtype != td.Dtype || !slices.Equal(ti.Shape, td.Shape) {
			t.Fatalf("tensor %q came back as %+v", td.Name, ti)
		}
		data, err := again.Data(td.Name)
		if err != nil || !bytes.Equal(data, td.Data) {
			t.Fatalf("tensor %q: its bytes did not come back (%v)", td.Name, err)
		}
	}
	if len(sf.Metadata())+len(again.Metadata()) > 0 && !reflect.DeepEqual(sf.Metadata(), again.Metadata()) {
		t.Fatalf("metadata %v came back as %v", sf.Metadata(), again.Metadata())
	}
}
