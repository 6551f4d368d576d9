// Package depcheck holds tests of the module's import graph: the commands
// that need no MLX must not link it.
package depcheck
