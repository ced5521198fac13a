package main

import (
	"io"
	"os"

	"github.com/kdtriage/kdtriage/kdump"
)

// infoUser reports user-mode dumps (MDMP, USERDUMP).
func (a *app) infoUser(j *infoJSON, _ *os.File, _ int64, format kdump.Format, openErr error) (*infoJSON, func(io.Writer) error, error) {
	_ = j
	_ = format
	return nil, nil, openErr
}
