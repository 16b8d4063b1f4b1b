package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"

	"github.com/spf13/cobra"

	"github.com/orca-sync/orca-sync/api/wire"
)

// newRunCommand is `orca-sync run P/S`: run a scheduled job now, wait for
// it, print its last lines and exit with its exit code
// (docs/reference/cli.md#orca-sync-run).
func newRunCommand() *cobra.Command {
	var c clientFlags
	var detach bool
	cmd := &cobra.Command{
		Use: "run PROJECT/SERVICE", Short: "Run a scheduled job now and exit with its exit code", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			p, s, err := splitService(args[0])
			if err != nil {
				return err
			}
			q := url.Values{"detach": {fmt.Sprint(detach)}}
			resp, err := c.do(cmd, http.MethodPost, "/api/v1/services/"+url.PathEscape(p)+"/"+url.PathEscape(s)+"/run?"+q.Encode())
			if err != nil {
				return err
			}
			defer resp.Body.Close()
			body, err := io.ReadAll(resp.Body)
			if err != nil {
				return fmt.Errorf("read the run's answer: %w", err)
			}
			var run wire.JobRun
			if err := json.Unmarshal(body, &run); err != nil {
				return fmt.Errorf("read the run's answer: %w", err)
			}
			if c.output == "json" {
				_, err = cmd.OutOrStdout().Write(body)
			} else {
				err = wire.WriteJobRun(cmd.OutOrStdout(), run)
			}
			if err != nil {
				return err
			}
			return runExit(run)
		},
	}
	c.register(cmd)
	cmd.Flags().BoolVar(&detach, "detach", false, "return once the job's container runs, without waiting for its exit")
	return cmd
}

// runExit is the process exit of a run: its exit code (1 when it could not
// be had: it did not start, or timed out with 0).
func runExit(run wire.JobRun) error {
	switch {
	case run.Running:
		return nil
	case run.ExitCode != 0:
		return exitError{code: run.ExitCode}
	case run.Failed():
		return exitError{code: 1}
	}
	return nil
}
