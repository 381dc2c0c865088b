package main

import (
	"context"
	"path/filepath"

	"go.uber.org/zap"

	"github.com/goferproxy/gofer/storage"
	"github.com/goferproxy/gofer/storage/disk"
	"github.com/goferproxy/gofer/storage/embedded"
	"github.com/goferproxy/gofer/storage/mongo"
	"github.com/goferproxy/gofer/storage/s3"
)

// openBlobs opens the blob store the settings name.
func openBlobs(ctx context.Context, s *settings, log *zap.Logger) (storage.Blobs, error) {
	if s.storage == "s3" {
		return s3.New(ctx, s3.Config{
			Endpoint: s.s3Endpoint, Region: s.s3Region, Bucket: s.s3Bucket, Prefix: s.s3Prefix,
			ForcePathStyle: s.s3ForcePathStyle, CreateBucket: s.s3CreateBucket, Log: log,
		})
	}
	return disk.New(filepath.Join(s.dataDir, "blobs"))
}

// openMetadata opens the metadata store the settings name.
func openMetadata(ctx context.Context, s *settings) (storage.Metadata, error) {
	if s.metadata == "mongo" {
		return mongo.Open(ctx, s.mongoURI, s.mongoDatabase)
	}
	return embedded.Open(filepath.Join(s.dataDir, "metadata.db"))
}
