package shard

import (
	"errors"
	"fmt"
)

// ErrChanged is matched by a *LoadError for a shard file that disappeared
// or changed size after the plan was made.
var ErrChanged = errors.New("loader: shard file changed since it was planned")

// LoadError reports a failure while loading a section: a file missing,
// changed, truncated or unreadable, or an MLX error. Everything created for
// the section has been freed when it is returned.
type LoadError struct {
	Section string
	Tensor  string // "" when not about one tensor
	File    string
	Err     error
}

func (e *LoadError) Error() string {
	msg := "loader: section " + e.Section
	if e.Tensor != "" {
		msg += fmt.Sprintf(": tensor %q", e.Tensor)
	}
	if e.File != "" {
		msg += " in " + e.File
	}
	return msg + ": " + e.Err.Error()
}

// Unwrap gives the cause.
func (e *LoadError) Unwrap() error { return e.Err }
