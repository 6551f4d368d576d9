package mlx

import (
	"errors"
	"fmt"
)

// Error is an error MLX reported for one call: the operation and MLX's own
// message, which names the shapes, dtypes or values it rejected.
type Error struct {
	Op  string // the mlx-c function, e.g. "mlx_matmul"
	Msg string // MLX's message
}

func (e *Error) Error() string { return "mlx: " + e.Op + ": " + e.Msg }

// ErrFreed is returned when an Array or Group is used after Free.
var ErrFreed = errors.New("mlx: use of a freed handle")

// ErrShape is returned (wrapped) when a shape or data length given from Go
// is invalid before MLX is even asked.
var ErrShape = errors.New("mlx: invalid shape")

// check turns an mlx-c return code into an error carrying MLX's message.
// Only call it on the MLX thread, right after the C call.
func check(op string, rc int32) error {
	if rc == 0 {
		return nil
	}
	return &Error{Op: op, Msg: takeError()}
}

// checkHandle is check for the functions that return a handle, empty on
// error.
func checkHandle(op string, h uintptr) error {
	if h != 0 {
		return nil
	}
	return &Error{Op: op, Msg: takeError()}
}

func shapeErr(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrShape}, args...)...)
}
