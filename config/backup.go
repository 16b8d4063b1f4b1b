package config

import (
	"fmt"
	"net/url"
	"path/filepath"
	"strings"
)

// BackupConfig is the [backup] table: when volume backups run and where their
// archives go (docs/reference/cluster-toml.md#backup).
type BackupConfig struct {
	// Enabled runs backups on Schedule; `orca-sync backup run` works either way.
	Enabled bool
	// Schedule is a 6-field cron expression, seconds first.
	Schedule string
	// RetentionDays: archives dated older are deleted from each target after
	// every backup; 0 keeps them all.
	RetentionDays int
	Targets       []BackupTarget
}

// Backup target types.
const (
	BackupLocal = "local"
	BackupS3    = "s3"
)

// BackupTarget is where archives are written: type "local" (Path) or "s3".
type BackupTarget struct {
	Type      string
	Path      string
	Endpoint  string
	Bucket    string
	Region    string
	AccessKey string
	SecretKey string
}

// Name is how reports, status and `backup list` name the target: its
// directory, or s3://bucket at its endpoint. It never holds a key.
func (t BackupTarget) Name() string {
	if t.Type == BackupS3 {
		return "s3://" + t.Bucket + " (" + t.Endpoint + ")"
	}
	return t.Path
}

func convertBackup(r rawClusterFile) BackupConfig {
	b := BackupConfig{Enabled: r.Backup.Enabled, Schedule: r.Backup.Schedule, RetentionDays: r.Backup.RetentionDays}
	for _, t := range r.Backup.Targets {
		b.Targets = append(b.Targets, BackupTarget(t))
	}
	return b
}

func validateBackup(b BackupConfig, sink errorSink) {
	if b.Schedule != "" {
		if _, err := ParseSchedule(b.Schedule); err != nil {
			sink.at("", -1, "backup.schedule", "backup.schedule %q: %v (six fields, seconds first: \"0 0 3 * * *\")", b.Schedule, err)
		}
	} else if b.Enabled {
		sink.at("", -1, "backup.enabled", "backup.enabled = true needs backup.schedule (six fields, seconds first: \"0 0 3 * * *\")")
	}
	if b.Enabled && len(b.Targets) == 0 {
		sink.at("", -1, "backup.enabled", "backup.enabled = true needs at least one [[backup.targets]]")
	}
	if b.RetentionDays < 0 {
		sink.at("", -1, "backup.retention_days", "backup.retention_days must be 0 (keep every archive) or more")
	}
	for i, t := range b.Targets {
		validateBackupTarget(i, t, sink)
	}
}

func validateBackupTarget(i int, t BackupTarget, sink errorSink) {
	const table = "backup.targets"
	switch t.Type {
	case BackupLocal:
		if t.Path == "" || (!strings.Contains(t.Path, "${") && !filepath.IsAbs(t.Path)) {
			sink.at(table, i, "path", "backup target %d: type \"local\" needs an absolute path", i+1)
		}
		for key, v := range map[string]string{"endpoint": t.Endpoint, "bucket": t.Bucket, "region": t.Region, "access_key": t.AccessKey, "secret_key": t.SecretKey} {
			if v != "" {
				sink.at(table, i, key, "backup target %d: %s is a key of type \"s3\", not \"local\"", i+1, key)
			}
		}
	case BackupS3:
		if t.Path != "" {
			sink.at(table, i, "path", "backup target %d: path is a key of type \"local\", not \"s3\"", i+1)
		}
		for key, v := range map[string]string{"endpoint": t.Endpoint, "bucket": t.Bucket, "access_key": t.AccessKey, "secret_key": t.SecretKey} {
			if v == "" {
				sink.at(table, i, key, "backup target %d: type \"s3\" needs %s", i+1, key)
			}
		}
		if t.Endpoint != "" && !strings.Contains(t.Endpoint, "${") {
			if _, _, err := S3Endpoint(t.Endpoint); err != nil {
				sink.at(table, i, "endpoint", "backup target %d: %v", i+1, err)
			}
		}
	default:
		sink.at(table, i, "type", "backup target %d: type = %q must be \"local\" or \"s3\"", i+1, t.Type)
	}
}

// S3Endpoint splits an s3 target's endpoint into the host (with port) and
// whether it speaks TLS: "https://host[:port]" or "http://host[:port]", or a
// bare host, which means https.
func S3Endpoint(endpoint string) (host string, secure bool, err error) {
	if !strings.Contains(endpoint, "://") {
		endpoint = "https://" + endpoint
	}
	u, err := url.Parse(endpoint)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") || (u.Path != "" && u.Path != "/") {
		return "", false, fmt.Errorf("endpoint %q must be \"https://host[:port]\", \"http://host[:port]\" or a host name", endpoint)
	}
	return u.Host, u.Scheme == "https", nil
}
