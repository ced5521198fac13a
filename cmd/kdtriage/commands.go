package main

import "github.com/spf13/cobra"

// commands lists the top-level subcommands. Each lives in its own file.
func (a *app) commands() []*cobra.Command {
	return []*cobra.Command{
		// Local analysis.
		a.analyzeCommand(),
		a.infoCommand(),
		a.rulesCommand(a.triageCaseAnalyzer()),
		a.symbolsCommand(),
		// The fleet pipeline.
		a.serveCommand(),
		a.workerCommand(),
		a.submitCommand(),
		a.agentCommand(),
		a.feedCommand(),
		a.reprocessCommand(),
		a.versionCommand(),
	}
}

// symbolsCommand groups the symbol tools.
func (a *app) symbolsCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "symbols",
		Short: "Symbol tools: symbol paths, PDB public symbols, address resolution",
		Long: `Symbol tools for engineers.

The symbol path uses WinDbg's syntax (srv*CACHE*URL, cache*DIR, plain directories,
';' lists) and comes from --symbol-path, the config key symbols.path
(KDTRIAGE_SYMBOLS_PATH) or _NT_SYMBOL_PATH, in that order.`,
		Example: `  kdtriage symbols path
  kdtriage symbols publics --undecorate app.pdb
  kdtriage symbols resolve --pdb amdppm.pdb 0x334c
  kdtriage symbols lookup --offline MEMORY.DMP fffff8047bdf5a80`,
		// As for rules: a mistyped subcommand is an error, not the help.
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	cmd.AddCommand(a.symbolsPathCommand(), a.symbolsPublicsCommand(), a.symbolsResolveCommand(), a.symbolsDumpResolveCommand())
	return cmd
}
