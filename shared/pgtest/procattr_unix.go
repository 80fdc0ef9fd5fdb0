//go:build unix

package pgtest

import "syscall"

// newProcessGroup puts a child in a process group of its own, out of reach
// of the terminal's signals to the test binary's group.
func newProcessGroup() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
