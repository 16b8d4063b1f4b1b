package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/orca-sync/orca-sync/api/wire"
	"github.com/orca-sync/orca-sync/state"
	"github.com/spf13/cobra"
)

// clientFlags are shared by the commands that talk to a running serve.
type clientFlags struct {
	server, token, dataDir, output string
}

func (c *clientFlags) register(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringVar(&c.server, "server", "http://127.0.0.1:6880", "URL of a running orca-sync serve")
	fl.StringVar(&c.token, "token", "", "API token (default: <data-dir>/admin.token)")
	fl.StringVar(&c.dataDir, "data-dir", defaultDataDir(), "where serve keeps admin.token")
	fl.StringVarP(&c.output, "output", "o", "text", "output format: text or json")
}

// do sends one API request and returns the response; non-2xx answers become
// errors carrying the API's message.
func (c *clientFlags) do(cmd *cobra.Command, method, path string) (*http.Response, error) {
	token := c.token
	if token == "" {
		b, err := os.ReadFile(filepath.Join(c.dataDir, "admin.token"))
		if err != nil {
			return nil, fmt.Errorf("no --token given and %w", err)
		}
		token = strings.TrimSpace(string(b))
	}
	req, err := http.NewRequestWithContext(cmd.Context(), method, strings.TrimRight(c.server, "/")+path, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := (&http.Client{}).Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	if resp.StatusCode >= 300 {
		defer resp.Body.Close()
		var e struct {
			Error string `json:"error"`
		}
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		if json.Unmarshal(body, &e) != nil || e.Error == "" {
			e.Error = strings.TrimSpace(string(body))
		}
		return nil, fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, e.Error)
	}
	return resp, nil
}

// get decodes a JSON answer into v, or copies it as is with --output json.
func (c *clientFlags) get(cmd *cobra.Command, path string, v any) (raw bool, err error) {
	resp, err := c.do(cmd, http.MethodGet, path)
	if err != nil {
		return false, err
	}
	defer resp.Body.Close()
	if c.output == "json" {
		_, err := io.Copy(cmd.OutOrStdout(), resp.Body)
		return true, err
	}
	return false, json.NewDecoder(resp.Body).Decode(v)
}

func addClientCommands(root *cobra.Command) {
	root.AddCommand(newStatusCommand(), newDriftCommand(), newHistoryCommand(), newSyncCommand(), newRedeployCommand(),
		newCanaryCommand("promote"), newCanaryCommand("abort"), newLogsCommand(), newRunCommand(), newBackupCommand())
}

func newStatusCommand() *cobra.Command {
	var c clientFlags
	cmd := &cobra.Command{
		Use: "status", Short: "Show the deployed commit and each service's sync and health", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var st wire.Status
			if raw, err := c.get(cmd, "/api/v1/status", &st); raw || err != nil {
				return err
			}
			return wire.WriteStatus(cmd.OutOrStdout(), st)
		},
	}
	c.register(cmd)
	return cmd
}

func newDriftCommand() *cobra.Command {
	var c clientFlags
	cmd := &cobra.Command{
		Use: "drift", Short: "Check for out-of-band changes now: each finding by service, container and field", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var rep wire.DriftReport
			if raw, err := c.get(cmd, "/api/v1/drift", &rep); raw || err != nil {
				return err
			}
			return wire.WriteDrift(cmd.OutOrStdout(), rep)
		},
	}
	c.register(cmd)
	return cmd
}

func newHistoryCommand() *cobra.Command {
	var c clientFlags
	var limit int
	cmd := &cobra.Command{
		Use: "history", Short: "List recent syncs, newest first", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var recs []state.SyncRecord
			if raw, err := c.get(cmd, "/api/v1/history?limit="+strconv.Itoa(limit), &recs); raw || err != nil {
				return err
			}
			return wire.WriteHistory(cmd.OutOrStdout(), recs)
		},
	}
	c.register(cmd)
	cmd.Flags().IntVar(&limit, "limit", 20, "how many syncs")
	return cmd
}

func newSyncCommand() *cobra.Command {
	var c clientFlags
	var retry bool
	cmd := &cobra.Command{
		Use: "sync", Short: "Signal the loop to pull and sync now", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			path := "/api/v1/sync"
			if retry {
				path += "?retry=true"
			}
			return c.post(cmd, path)
		},
	}
	c.register(cmd)
	cmd.Flags().BoolVar(&retry, "retry", false, "also retry rollouts that failed and are held until git changes")
	return cmd
}

func newRedeployCommand() *cobra.Command {
	var c clientFlags
	cmd := &cobra.Command{
		Use: "redeploy PROJECT/SERVICE", Short: "Force-pull a service's image and replace its containers", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			p, s, err := splitService(args[0])
			if err != nil {
				return err
			}
			return c.post(cmd, "/api/v1/services/"+url.PathEscape(p)+"/"+url.PathEscape(s)+"/redeploy")
		},
	}
	c.register(cmd)
	return cmd
}

func newCanaryCommand(action string) *cobra.Command {
	var c clientFlags
	short := map[string]string{
		"promote": "Promote a service's running canary: roll the stable set to its spec",
		"abort":   "Abort a service's running canary: remove it and hold its spec as failed",
	}[action]
	cmd := &cobra.Command{
		Use: action + " PROJECT/SERVICE", Short: short, Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			p, s, err := splitService(args[0])
			if err != nil {
				return err
			}
			return c.post(cmd, "/api/v1/services/"+url.PathEscape(p)+"/"+url.PathEscape(s)+"/"+action)
		},
	}
	c.register(cmd)
	return cmd
}

func (c *clientFlags) post(cmd *cobra.Command, path string) error {
	resp, err := c.do(cmd, http.MethodPost, path)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, err = io.Copy(cmd.OutOrStdout(), resp.Body)
	return err
}

func newLogsCommand() *cobra.Command {
	var c clientFlags
	var tail int
	var follow bool
	cmd := &cobra.Command{
		Use: "logs PROJECT/SERVICE", Short: "Print a service's container logs", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			p, s, err := splitService(args[0])
			if err != nil {
				return err
			}
			q := url.Values{"tail": {strconv.Itoa(tail)}, "follow": {strconv.FormatBool(follow)}}
			resp, err := c.do(cmd, http.MethodGet, "/api/v1/services/"+url.PathEscape(p)+"/"+url.PathEscape(s)+"/logs?"+q.Encode())
			if err != nil {
				return err
			}
			defer resp.Body.Close()
			_, err = io.Copy(cmd.OutOrStdout(), resp.Body)
			if errors.Is(cmd.Context().Err(), err) {
				return nil
			}
			return err
		},
	}
	c.register(cmd)
	cmd.Flags().IntVar(&tail, "tail", 100, "lines from the end of each container's log (0: all)")
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "keep streaming")
	return cmd
}

func splitService(arg string) (project, service string, err error) {
	p, s, ok := strings.Cut(arg, "/")
	if !ok || p == "" || s == "" {
		return "", "", fmt.Errorf("%q: want PROJECT/SERVICE", arg)
	}
	return p, s, nil
}
