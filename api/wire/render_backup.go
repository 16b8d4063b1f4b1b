package wire

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
)

// writeBackupStatus is status's table of each volume's last backup.
func writeBackupStatus(w io.Writer, bs []BackupStatus) error {
	if len(bs) == 0 {
		return nil
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "\nBACKUP\tVOLUME\tLAST ATTEMPT\tLAST SUCCESS\tERROR")
	for _, b := range bs {
		ok := "never"
		if b.LastSuccess != nil {
			ok = b.LastSuccess.Format(time.DateTime)
		}
		fmt.Fprintf(tw, "%s/%s\t%s\t%s\t%s\t%s\n", b.Project, b.Service, b.Volume, b.LastAttempt.Format(time.DateTime), ok, b.LastError)
	}
	return tw.Flush()
}

// WriteBackupReport prints what a backup run did, volume by volume and
// target by target.
func WriteBackupReport(w io.Writer, rep BackupReport) error {
	for _, s := range rep.Services {
		fmt.Fprintf(w, "%s/%s: pre_hook: %s\n", s.Project, s.Service, s.Hook)
		if s.HookOutput != "" {
			fmt.Fprintf(w, "  hook output:\n    %s\n", strings.ReplaceAll(strings.TrimRight(s.HookOutput, "\n"), "\n", "\n    "))
		}
		if s.Error != "" {
			fmt.Fprintf(w, "  FAILED: %s\n", s.Error)
		}
		for _, v := range s.Volumes {
			if v.Error != "" {
				fmt.Fprintf(w, "  volume %s: FAILED: %s\n", v.Volume, v.Error)
				continue
			}
			fmt.Fprintf(w, "  volume %s: %s (%d files, %d bytes)\n", v.Volume, v.Archive, v.Files, v.Bytes)
			for _, t := range v.Targets {
				switch {
				case t.Error != "":
					fmt.Fprintf(w, "    %s: FAILED: %s\n", t.Target, t.Error)
				case len(t.Removed) > 0:
					fmt.Fprintf(w, "    %s: written; retention removed %s\n", t.Target, strings.Join(t.Removed, ", "))
				default:
					fmt.Fprintf(w, "    %s: written\n", t.Target)
				}
			}
		}
	}
	result := "every archive written"
	if !rep.OK {
		result = "FAILED: not every archive was written"
	}
	if len(rep.Services) == 0 {
		result = "no service has named volumes"
	}
	_, err := fmt.Fprintf(w, "backup %s in %s\n", result, rep.Finished.Sub(rep.Started).Round(time.Millisecond))
	return err
}

// WriteBackupList prints archives as a table, newest first.
func WriteBackupList(w io.Writer, list BackupList) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ARCHIVE\tSERVICE\tVOLUME\tTIME\tSIZE\tTARGET")
	for _, a := range list.Archives {
		svc := "-"
		if a.Service != "" {
			svc = a.Project + "/" + a.Service
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\n", a.Name, svc, a.Volume, a.Time.Format(time.DateTime), a.Size, a.Target)
	}
	for _, e := range list.Errors {
		fmt.Fprintf(tw, "could not list: %s\n", e)
	}
	return tw.Flush()
}
