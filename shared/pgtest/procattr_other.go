//go:build !unix

package pgtest

import "syscall"

// newProcessGroup has nothing to do where there are no process groups.
func newProcessGroup() *syscall.SysProcAttr { return nil }
