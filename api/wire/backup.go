package wire

import "time"

// BackupReport is what one backup run did (POST /api/v1/backups).
type BackupReport struct {
	Started  time.Time             `json:"started"`
	Finished time.Time             `json:"finished"`
	Services []BackupServiceReport `json:"services"`
	// OK is true when every archive was written to every target.
	OK bool `json:"ok"`
}

// BackupServiceReport is the backup of one service's volumes.
type BackupServiceReport struct {
	Project string `json:"project"`
	Service string `json:"service"`
	// Hook says whether the pre_hook ran and where, or why not.
	Hook string `json:"hook"`
	// HookOutput is the hook's last output, secret values redacted.
	HookOutput string               `json:"hook_output,omitempty"`
	Error      string               `json:"error,omitempty"`
	Volumes    []BackupVolumeReport `json:"volumes"`
}

// BackupVolumeReport is the archive of one volume and where it went.
type BackupVolumeReport struct {
	Volume  string               `json:"volume"`
	Archive string               `json:"archive,omitempty"`
	Bytes   int64                `json:"bytes"`
	Files   int                  `json:"files"`
	Error   string               `json:"error,omitempty"`
	Targets []BackupTargetResult `json:"targets"`
}

// BackupTargetResult is one target's part of a volume's backup: Error is
// empty when the archive was written whole; Removed lists the archives
// retention deleted from it afterwards.
type BackupTargetResult struct {
	Target  string   `json:"target"`
	Error   string   `json:"error,omitempty"`
	Removed []string `json:"removed,omitempty"`
}

// BackupArchive is one archive held by a target (GET /api/v1/backups).
type BackupArchive struct {
	Target string `json:"target"`
	Name   string `json:"name"`
	// Project, Service and Volume are set when the name is one of a volume
	// of the deployed checkout.
	Project string    `json:"project,omitempty"`
	Service string    `json:"service,omitempty"`
	Volume  string    `json:"volume,omitempty"`
	Time    time.Time `json:"time"`
	Size    int64     `json:"size"`
}

// BackupList is the answer of GET /api/v1/backups: the archives, newest
// first, and the targets that could not be listed.
type BackupList struct {
	Archives []BackupArchive `json:"archives"`
	Errors   []string        `json:"errors,omitempty"`
}

// BackupStatus is the last backup of one volume, as status shows it.
type BackupStatus struct {
	Project     string     `json:"project"`
	Service     string     `json:"service"`
	Volume      string     `json:"volume"`
	LastAttempt time.Time  `json:"last_attempt"`
	LastSuccess *time.Time `json:"last_success,omitempty"`
	// LastError is why the last attempt failed; empty when it succeeded.
	LastError string `json:"last_error,omitempty"`
}

// RestoreReport is what a restore did (POST /api/v1/backups/restore).
type RestoreReport struct {
	Project string `json:"project"`
	Service string `json:"service"`
	Volume  string `json:"volume"`
	Archive string `json:"archive"`
	Target  string `json:"target"`
	// Stopped are the containers stopped and removed for the restore; the
	// next sync, signalled at once, starts the service again.
	Stopped []string `json:"stopped"`
	Bytes   int64    `json:"bytes"`
}
