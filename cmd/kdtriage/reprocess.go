package main

import (
	"fmt"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/spf13/cobra"

	"github.com/kdtriage/kdtriage/workers"
)

const reprocessLong = `Queue stored dumps for analysis again, typically after a rule change.

With no arguments every dump still in the object store is queued; otherwise
the given SHA-256s. Workers re-run the analysis when their rule set or
analyzer differs from the one that produced the current report (always with
--force) and publish a superseding report (its "supersedes" field names the
report it replaces). Reports under an unchanged rule set are not repeated.`

func (a *app) reprocessCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "reprocess [SHA256...]",
		Short: "Re-run analysis of stored dumps and publish superseding reports",
		Long:  reprocessLong,
		Example: `  kdtriage reprocess                 # every stored dump
  kdtriage reprocess --force 3f5e...  # one dump, even with unchanged rules`,
		RunE: func(cmd *cobra.Command, args []string) error {
			force, _ := cmd.Flags().GetBool("force")
			nc, err := a.connect(cmd, "kdtriage-reprocess")
			if err != nil {
				return err
			}
			defer nc.Close()
			js, err := jetstream.New(nc)
			if err != nil {
				return err
			}
			sub, err := workers.NewSubmitter(cmd.Context(), js, workers.SubmitOptions{})
			if err != nil {
				return err
			}
			n, err := sub.Reprocess(cmd.Context(), args, force)
			fmt.Fprintf(a.stdout, "queued %d dumps for reprocessing\n", n)
			return err
		},
	}
	cmd.Flags().Bool("force", false, "re-analyse even when the rule set is unchanged")
	addNATSFlags(cmd, "NATS server URL(s) (default nats://127.0.0.1:4222)")
	return cmd
}
