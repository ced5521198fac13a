package main

import "github.com/spf13/cobra"

// commands lists the top-level subcommands. Each lives in its own file.
func (a *app) commands() []*cobra.Command {
	return []*cobra.Command{
		a.infoCommand(),
		a.versionCommand(),
	}
}
