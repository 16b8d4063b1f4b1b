package backup

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/orca-sync/orca-sync/config"
)

// s3PartSize is the part size of multipart uploads: an archive larger than
// one part goes up in parts and appears only when the upload is completed;
// a smaller one is a single PUT, which S3 stores whole or not at all.
const s3PartSize = 16 << 20

// s3Target is a bucket of an S3-compatible store, through minio-go.
type s3Target struct {
	cli    *minio.Client
	bucket string
	name   string
}

var _ Target = (*s3Target)(nil)

func newS3Target(t config.BackupTarget) (*s3Target, error) {
	host, secure, err := config.S3Endpoint(t.Endpoint)
	if err != nil {
		return nil, err
	}
	cli, err := minio.New(host, &minio.Options{
		Creds:  credentials.NewStaticV4(t.AccessKey, t.SecretKey, ""),
		Secure: secure,
		Region: t.Region,
	})
	if err != nil {
		return nil, fmt.Errorf("S3 client for %s: %w", t.Name(), err)
	}
	return &s3Target{cli: cli, bucket: t.Bucket, name: t.Name()}, nil
}

func (s *s3Target) Name() string { return s.name }

func (s *s3Target) Put(ctx context.Context, name string, r io.Reader, size int64) error {
	_, err := s.cli.PutObject(ctx, s.bucket, name, r, size, minio.PutObjectOptions{
		ContentType: "application/gzip", PartSize: s3PartSize,
	})
	if err != nil {
		return fmt.Errorf("upload %s to %s: %w", name, s.name, err)
	}
	return nil
}

func (s *s3Target) List(ctx context.Context) ([]Object, error) {
	var out []Object
	for o := range s.cli.ListObjects(ctx, s.bucket, minio.ListObjectsOptions{}) {
		if o.Err != nil {
			return nil, fmt.Errorf("list %s: %w", s.name, o.Err)
		}
		if strings.HasSuffix(o.Key, archiveExt) && !strings.Contains(o.Key, "/") {
			out = append(out, Object{Name: o.Key, Size: o.Size})
		}
	}
	return out, nil
}

func (s *s3Target) Get(ctx context.Context, name string) (io.ReadCloser, error) {
	if _, err := s.cli.StatObject(ctx, s.bucket, name, minio.StatObjectOptions{}); err != nil {
		return nil, fmt.Errorf("find %s in %s: %w", name, s.name, err)
	}
	o, err := s.cli.GetObject(ctx, s.bucket, name, minio.GetObjectOptions{})
	if err != nil {
		return nil, fmt.Errorf("download %s from %s: %w", name, s.name, err)
	}
	return o, nil
}

func (s *s3Target) Delete(ctx context.Context, name string) error {
	if err := s.cli.RemoveObject(ctx, s.bucket, name, minio.RemoveObjectOptions{}); err != nil {
		return fmt.Errorf("delete %s from %s: %w", name, s.name, err)
	}
	return nil
}
