package testenv

import "syscall"

// sysProcAttr makes the kernel kill a child if the test binary dies without
// running its cleanups (a panic, a -timeout kill), so nothing is left running.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
