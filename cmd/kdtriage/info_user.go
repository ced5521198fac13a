package main

import (
	"io"
	"os"

	"github.com/kdtriage/kdtriage/kdump"
)

// infoUser reports user-mode dumps (MDMP, and legacy USERDUMP/USERDU64).
func (a *app) infoUser(j *infoJSON, fh *os.File, size int64, format kdump.Format, _ error) (*infoJSON, func(io.Writer) error, error) {
	return infoUserDump(j, fh, size, format)
}
