package main

import (
	"github.com/spf13/cobra"
)

const workerLong = `Run only workers (and, with --keeper, the dead-letter keeper) against a
NATS server: a kdtriage serve --listen elsewhere or a NATS cluster set up by
kdtriage serve --nats-url. Add as many worker processes as the load needs;
they share the durable consumer, one job in flight per slot.`

func (a *app) workerCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:     "worker",
		Short:   "Run pipeline workers against a NATS server",
		Long:    workerLong,
		Example: `  kdtriage worker --nats-url nats://queue:4222 --creds worker.creds --workers 8 --rules /etc/kdtriage/rules`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			o, err := a.runOptions(cmd)
			if err != nil {
				return err
			}
			o.Keeper, _ = cmd.Flags().GetBool("keeper")
			nc, err := a.connect(cmd, "kdtriage-worker")
			if err != nil {
				return err
			}
			defer nc.Close()
			return a.runPipeline(cmd.Context(), nc, o, nc.ConnectedUrlRedacted())
		},
	}
	addNATSFlags(cmd, "NATS server URL(s) (default nats://127.0.0.1:4222)")
	addPipelineFlags(cmd)
	cmd.Flags().Bool("keeper", false, "also run the dead-letter keeper")
	return cmd
}
