// Package s3 implements storage.Blobs on an S3 bucket (AWS S3, or a compatible server such as
// MinIO or versitygw), the blob store that several gofer replicas share. A blob becomes visible
// only whole, through one PutObject or one completed multipart upload, and writes are
// put-if-absent (If-None-Match: *, or a weaker HeadObject check where the server ignores it).
// It must never replace a stored blob on a server that honours If-None-Match, never hold more
// than one part of a blob in memory, and never leave the parts of a failed upload behind.
package s3

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"
	//lint:ignore SA1019 deprecated for the AWS SDK's own tracing, whose OpenTelemetry adapter (smithyoteltracing) our module proxy does not serve; v0.72.0 matches otel v1.47 and works.
	"go.opentelemetry.io/contrib/instrumentation/github.com/aws/aws-sdk-go-v2/otelaws"
	"go.uber.org/zap"

	"github.com/goferproxy/gofer"
	"github.com/goferproxy/gofer/storage"
)

var _ storage.Blobs = (*Store)(nil)

const (
	// partSize is how much of a blob a Put holds in memory, and the size of each part of a
	// multipart upload: a blob that ends within it goes up in one PutObject. 16 MiB keeps a
	// 500 MiB zip (the go command's limit) to 32 parts, far below S3's 10,000.
	partSize = 16 << 20
	maxParts = 10_000
	// abortTimeout bounds the cleanup of a failed upload, which runs even when the Put's own
	// context is done.
	abortTimeout = time.Minute
)

// Config says where the bucket is and how to reach it.
type Config struct {
	// Endpoint is the base URL of the S3 API, with its scheme ("http://127.0.0.1:7070").
	// Empty means AWS S3 itself, at the endpoint of Region.
	Endpoint string
	// Region is the bucket's region. Empty means the region of the default AWS configuration
	// (AWS_REGION, ~/.aws/config), and "us-east-1" if that names none, which S3-compatible
	// servers accept.
	Region string
	// Bucket holds the blobs; it is required.
	Bucket string
	// Prefix is prepended to every key, joined with "/", so that one bucket can hold several
	// stores or other data. Empty means keys are object names as they are; leading and trailing
	// slashes are ignored.
	Prefix string
	// ForcePathStyle addresses the bucket as <endpoint>/<bucket> instead of
	// <bucket>.<endpoint>. False (virtual-hosted style) is what AWS wants; MinIO and
	// versitygw on a plain host:port need true.
	ForcePathStyle bool
	// AccessKey and SecretKey are static credentials. Both empty means the default AWS
	// credential chain (environment, shared files, instance or task role); one without the
	// other is an error.
	AccessKey, SecretKey string
	// CreateBucket lets New create the bucket when it does not exist. False makes a missing
	// bucket an error of New, so that a typo in the name cannot start an empty proxy.
	CreateBucket bool
	// Log receives warnings (a server that ignores If-None-Match, an upload that could not be
	// aborted). Nil logs nothing.
	Log *zap.Logger
}

// Store keeps the blob of key in the object Prefix + "/" + key of the bucket. Create it with New.
type Store struct {
	client  *awss3.Client
	presign *awss3.PresignClient
	bucket  string
	prefix  string // "" or ending in "/"
	where   string // the endpoint, for messages
	log     *zap.Logger

	// Whether the server refuses, with 412, a PutObject and a CompleteMultipartUpload with
	// If-None-Match: * onto an existing object (probed by New). Where it does not, Put relies
	// on the HeadObject check alone, which is weaker: two writers racing for one key can both
	// write, and the last one wins.
	conditionalPut, conditionalComplete bool
}

// New connects to the bucket of cfg, creating it if it is missing and cfg.CreateBucket is set,
// and probes whether the server honours If-None-Match. An endpoint it cannot reach is an error
// matching gofer.ErrUnavailable.
func New(ctx context.Context, cfg Config) (*Store, error) {
	if cfg.Bucket == "" {
		return nil, gofer.Errorf(gofer.ErrInvalid, "s3: no bucket configured")
	}
	if (cfg.AccessKey == "") != (cfg.SecretKey == "") {
		return nil, gofer.Errorf(gofer.ErrInvalid, "s3: set both the access key and the secret key, or neither for the default AWS credential chain")
	}
	if cfg.Endpoint != "" {
		if u, err := url.Parse(cfg.Endpoint); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, gofer.Errorf(gofer.ErrInvalid, "s3: endpoint %q is not an http:// or https:// URL", cfg.Endpoint)
		}
	}
	// A server that stalls must not hold a request forever: bound the wait for response
	// headers (bodies are streamed, and bounded by their request's context).
	httpClient := awshttp.NewBuildableClient().WithTransportOptions(func(tr *http.Transport) {
		tr.ResponseHeaderTimeout = 30 * time.Second
	})
	opts := []func(*config.LoadOptions) error{config.WithHTTPClient(httpClient)}
	if cfg.Region != "" {
		opts = append(opts, config.WithRegion(cfg.Region))
	}
	if cfg.AccessKey != "" {
		opts = append(opts, config.WithCredentialsProvider(
			credentials.NewStaticCredentialsProvider(cfg.AccessKey, cfg.SecretKey, "")))
	}
	awsCfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("s3: load the AWS configuration: %w", err)
	}
	if awsCfg.Region == "" {
		awsCfg.Region = "us-east-1"
	}
	// Every call is a client span of the global tracer provider (looked up now, and delegating
	// to the one set later if none is set yet). The trace context goes in a header added after
	// signing, and never into a presigned URL: presigning stops the stack before that point.
	otelaws.AppendMiddlewares(&awsCfg.APIOptions)
	client := awss3.NewFromConfig(awsCfg, func(o *awss3.Options) {
		if cfg.Endpoint != "" {
			o.BaseEndpoint = aws.String(cfg.Endpoint)
		}
		o.UsePathStyle = cfg.ForcePathStyle
		// Checksums only where the API demands them. The bodies are seekable and signed
		// (SigV4 covers their SHA-256), so the default CRC32 trailers add nothing but a
		// second pass and aws-chunked encoding, which S3-compatible servers support unevenly.
		o.RequestChecksumCalculation = aws.RequestChecksumCalculationWhenRequired
		o.ResponseChecksumValidation = aws.ResponseChecksumValidationWhenRequired
	})
	s := &Store{
		client:  client,
		presign: awss3.NewPresignClient(client),
		bucket:  cfg.Bucket,
		where:   cfg.Endpoint,
		log:     cfg.Log,
	}
	if s.where == "" {
		s.where = "AWS S3 in " + awsCfg.Region
	}
	if s.log == nil {
		s.log = zap.NewNop()
	}
	if p := strings.Trim(cfg.Prefix, "/"); p != "" {
		s.prefix = p + "/"
	}
	if err := s.checkBucket(ctx, cfg.CreateBucket, awsCfg.Region); err != nil {
		return nil, err
	}
	if err := s.probe(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

// checkBucket makes sure the bucket exists, creating it if allowed.
func (s *Store) checkBucket(ctx context.Context, create bool, region string) error {
	_, err := s.client.HeadBucket(ctx, &awss3.HeadBucketInput{Bucket: &s.bucket})
	if err == nil {
		return nil
	}
	if status(err) != 404 {
		return &opError{op: "check bucket", key: s.bucket, where: s.where, kind: gofer.ErrUnavailable, err: err}
	}
	if !create {
		return gofer.Errorf(gofer.ErrNotFound, "s3: bucket %q does not exist at %s; create it or set GOFER_S3_CREATE_BUCKET=true", s.bucket, s.where)
	}
	in := &awss3.CreateBucketInput{Bucket: &s.bucket}
	// us-east-1 is the one region that must not be named as a location constraint.
	if region != "us-east-1" {
		in.CreateBucketConfiguration = &types.CreateBucketConfiguration{LocationConstraint: types.BucketLocationConstraint(region)}
	}
	_, err = s.client.CreateBucket(ctx, in)
	// Another replica starting at the same moment may have created it first.
	var owned *types.BucketAlreadyOwnedByYou
	if err != nil && !errors.As(err, &owned) {
		return &opError{op: "create bucket", key: s.bucket, where: s.where, kind: gofer.ErrUnavailable, err: err}
	}
	s.log.Info("s3: created bucket", zap.String("bucket", s.bucket), zap.String("endpoint", s.where))
	return nil
}

// probe finds out whether the server honours If-None-Match: * on PutObject and on
// CompleteMultipartUpload, by writing a probe object twice. AWS S3 and recent MinIO do; a
// server that ignores the header would let racing writers replace each other's blobs, so its
// absence is logged loudly rather than assumed.
func (s *Store) probe(ctx context.Context) error {
	var b [16]byte
	rand.Read(b[:])
	key := s.prefix + "_probe/" + hex.EncodeToString(b[:])
	put := func(ifNoneMatch *string) error {
		_, err := s.client.PutObject(ctx, &awss3.PutObjectInput{
			Bucket: &s.bucket, Key: &key, Body: strings.NewReader("probe"), IfNoneMatch: ifNoneMatch,
		})
		return err
	}
	fail := func(err error) error {
		return &opError{op: "probe conditional writes", key: key, where: s.where, kind: gofer.ErrUnavailable, err: err}
	}

	if err := put(aws.String("*")); err != nil {
		if st := status(err); st == 0 || st >= 500 && st != 501 {
			return fail(err)
		}
		// The server rejects the header itself: write without it from now on.
		s.log.Warn("s3: the server rejects If-None-Match on PutObject", zap.String("endpoint", s.where), zap.Error(err))
		if err := put(nil); err != nil {
			return fail(err)
		}
	} else {
		// Onto the object that now exists.
		if s.conditionalPut, err = refused(put(aws.String("*"))); err != nil {
			s.deleteProbe(ctx, key)
			return fail(err)
		}
	}
	defer s.deleteProbe(ctx, key)
	if s.conditionalPut {
		// The only part is also the last, so it may be smaller than S3's 5 MiB minimum.
		var err error
		s.conditionalComplete, err = refused(s.complete(ctx, key, strings.NewReader("probe, multipart"), aws.String("*")))
		if err != nil {
			return fail(err)
		}
	}
	if !s.conditionalPut || !s.conditionalComplete {
		s.log.Warn("s3: the server does not honour If-None-Match: *, so Put falls back to a HeadObject check, which is weaker: two writers racing for one key can both write, and the last one wins",
			zap.String("endpoint", s.where), zap.Bool("putObject", s.conditionalPut), zap.Bool("completeMultipartUpload", s.conditionalComplete))
	}
	return nil
}

// deleteProbe removes the probe object. A failure is only logged: the object is tiny, and it
// lies under "_probe/", which no key of storage.Key or storage.StagingKey can start with.
func (s *Store) deleteProbe(ctx context.Context, key string) {
	_, err := s.client.DeleteObject(context.WithoutCancel(ctx), &awss3.DeleteObjectInput{Bucket: &s.bucket, Key: &key})
	if err != nil {
		s.log.Warn("s3: could not delete the probe object", zap.String("bucket", s.bucket), zap.String("key", key), zap.Error(err))
	}
}

// refused reports whether err is the refusal of a conditional write; any other error is
// returned. A server that does not know the header may also reject it as a bad request.
func refused(err error) (bool, error) {
	switch st := status(err); {
	case err == nil:
		return false, nil
	case st == 412:
		return true, nil
	case st >= 400 && st < 500 || st == 501:
		return false, nil
	}
	return false, err
}

// complete uploads r as the only part of a multipart upload of key and completes it.
func (s *Store) complete(ctx context.Context, key string, r io.ReadSeeker, ifNoneMatch *string) (err error) {
	up, err := s.client.CreateMultipartUpload(ctx, &awss3.CreateMultipartUploadInput{Bucket: &s.bucket, Key: &key})
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			s.abort(ctx, key, up.UploadId)
		}
	}()
	part, err := s.client.UploadPart(ctx, &awss3.UploadPartInput{
		Bucket: &s.bucket, Key: &key, UploadId: up.UploadId, PartNumber: aws.Int32(1), Body: r,
	})
	if err != nil {
		return err
	}
	_, err = s.client.CompleteMultipartUpload(ctx, &awss3.CompleteMultipartUploadInput{
		Bucket: &s.bucket, Key: &key, UploadId: up.UploadId, IfNoneMatch: ifNoneMatch,
		MultipartUpload: &types.CompletedMultipartUpload{Parts: []types.CompletedPart{{ETag: part.ETag, PartNumber: aws.Int32(1)}}},
	})
	return err
}

// abort discards an unfinished multipart upload. It runs even when ctx is done, since the
// parts of an upload nobody aborts stay (and are billed) until a lifecycle rule removes them.
func (s *Store) abort(ctx context.Context, key string, uploadID *string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), abortTimeout)
	defer cancel()
	_, err := s.client.AbortMultipartUpload(ctx, &awss3.AbortMultipartUploadInput{Bucket: &s.bucket, Key: &key, UploadId: uploadID})
	var gone *types.NoSuchUpload
	if err != nil && !errors.As(err, &gone) {
		s.log.Warn("s3: could not abort a failed multipart upload; its parts stay in the bucket until a lifecycle rule removes them",
			zap.String("bucket", s.bucket), zap.String("key", key), zap.String("uploadID", aws.ToString(uploadID)), zap.Error(err))
	}
}

// object is the object name of key.
func (s *Store) object(op, key string) (string, error) {
	if key == "" {
		return "", gofer.Errorf(gofer.ErrInvalid, "s3: %s: empty key", op)
	}
	return s.prefix + key, nil
}

// Put stores r under key unless the key holds a blob. A blob that ends within one part goes up
// in one PutObject; a larger one in a multipart upload, one part in memory at a time, that is
// aborted if anything fails. Either way the object appears only once it is complete. The write
// carries If-None-Match: *, so that of writers racing for a key exactly one wins; on a server
// that ignores it (New probes and logs this), only HeadObject checks remain, which is weaker:
// two writers racing for one key can both write, and the last one wins.
func (s *Store) Put(ctx context.Context, key string, r io.Reader) error {
	obj, err := s.object("put", key)
	if err != nil {
		return err
	}
	// Checked before reading r, so that a retried commit does not upload a whole zip again
	// only to be refused; If-None-Match on the write settles races.
	if _, err := s.client.HeadObject(ctx, &awss3.HeadObjectInput{Bucket: &s.bucket, Key: &obj}); err == nil {
		return s.exists("put", key)
	} else if err := s.fail("put", key, err); !errors.Is(err, gofer.ErrNotFound) {
		return err
	}

	body := &peekReader{r: storage.ContextReader(ctx, r)}
	p := new(part)
	more, err := p.fill(body)
	if err != nil {
		return fmt.Errorf("s3: put %q: read: %w", key, err)
	}
	if !more {
		_, err := s.client.PutObject(ctx, &awss3.PutObjectInput{
			Bucket: &s.bucket, Key: &obj, Body: p.reader(), ContentLength: aws.Int64(p.n), IfNoneMatch: s.ifNoneMatch(s.conditionalPut),
		})
		if err != nil {
			return s.putFailed(ctx, key, obj, err)
		}
		return nil
	}
	return s.putMultipart(ctx, key, obj, body, p)
}

// putFailed classifies the failure of a conditional PutObject. A server may refuse a taken key
// as soon as it has read the headers and close the connection without reading the body
// (versitygw does): the client, still sending the body, gets a connection reset and never sees
// the 412. So a failure without any HTTP response is followed by a HeadObject, and a key that
// is now taken is reported as such. That answer is also given, and is still safe, in the rare
// case of a write that landed but whose response was lost: ErrExists tells the caller to look
// at the stored blob, which then holds its own bytes.
func (s *Store) putFailed(ctx context.Context, key, obj string, err error) error {
	if s.conditionalPut && status(err) == 0 && ctx.Err() == nil {
		if _, herr := s.client.HeadObject(ctx, &awss3.HeadObjectInput{Bucket: &s.bucket, Key: &obj}); herr == nil {
			return s.exists("put", key)
		}
	}
	return s.fail("put", key, err)
}

// putMultipart uploads p, which is full, and the rest of body in parts.
func (s *Store) putMultipart(ctx context.Context, key, obj string, body *peekReader, p *part) (err error) {
	up, err := s.client.CreateMultipartUpload(ctx, &awss3.CreateMultipartUploadInput{Bucket: &s.bucket, Key: &obj})
	if err != nil {
		return s.fail("put", key, err)
	}
	defer func() {
		if err != nil {
			s.abort(ctx, obj, up.UploadId)
		}
	}()
	var parts []types.CompletedPart
	for more := true; ; {
		n := int32(len(parts) + 1)
		out, err := s.client.UploadPart(ctx, &awss3.UploadPartInput{
			Bucket: &s.bucket, Key: &obj, UploadId: up.UploadId, PartNumber: &n, Body: p.reader(), ContentLength: aws.Int64(p.n),
		})
		if err != nil {
			return s.fail("put", key, err)
		}
		parts = append(parts, types.CompletedPart{ETag: out.ETag, PartNumber: &n})
		if !more {
			break
		}
		if len(parts) == maxParts {
			return gofer.Errorf(gofer.ErrInvalid, "s3: put %q: larger than %d parts of %d bytes", key, maxParts, partSize)
		}
		if more, err = p.fill(body); err != nil {
			return fmt.Errorf("s3: put %q: read: %w", key, err)
		}
	}
	if !s.conditionalComplete {
		// The weaker check, for servers that ignore If-None-Match here: it narrows the race to
		// the time between this request and the next.
		if _, err := s.client.HeadObject(ctx, &awss3.HeadObjectInput{Bucket: &s.bucket, Key: &obj}); err == nil {
			return s.exists("put", key)
		}
	}
	_, err = s.client.CompleteMultipartUpload(ctx, &awss3.CompleteMultipartUploadInput{
		Bucket: &s.bucket, Key: &obj, UploadId: up.UploadId, IfNoneMatch: s.ifNoneMatch(s.conditionalComplete),
		MultipartUpload: &types.CompletedMultipartUpload{Parts: parts},
	})
	if err != nil {
		return s.fail("put", key, err)
	}
	return nil
}

func (s *Store) ifNoneMatch(honoured bool) *string {
	if honoured {
		return aws.String("*")
	}
	return nil
}

// Open returns a reader of the blob under key. Its first request, a GET of the whole object,
// is made here, so that reading the blob from the start costs one round trip; the reader makes
// its later requests with ctx, so it must not be used once ctx is done.
func (s *Store) Open(ctx context.Context, key string) (storage.Reader, int64, error) {
	obj, err := s.object("open", key)
	if err != nil {
		return nil, 0, err
	}
	out, err := s.client.GetObject(ctx, &awss3.GetObjectInput{Bucket: &s.bucket, Key: &obj})
	if err != nil {
		return nil, 0, s.fail("open", key, err)
	}
	size, err := objectSize(out)
	if err != nil {
		out.Body.Close()
		return nil, 0, &opError{op: "open", key: key, where: s.where, kind: gofer.ErrUnavailable, err: err}
	}
	return &reader{s: s, ctx: ctx, key: key, obj: obj, etag: out.ETag, size: size, body: out.Body}, size, nil
}

// objectSize is the size of the whole object a GET answered.
func objectSize(out *awss3.GetObjectOutput) (int64, error) {
	if cr := aws.ToString(out.ContentRange); cr != "" {
		// "bytes 0-99/100": a server may answer a plain GET as a range.
		if i := strings.LastIndexByte(cr, '/'); i >= 0 {
			if n, err := strconv.ParseInt(cr[i+1:], 10, 64); err == nil {
				return n, nil
			}
		}
		return 0, fmt.Errorf("unreadable Content-Range %q", cr)
	}
	if out.ContentLength == nil {
		return 0, errors.New("the response has no Content-Length")
	}
	return *out.ContentLength, nil
}

// Delete removes the object of key; S3 answers a missing one as a success.
func (s *Store) Delete(ctx context.Context, key string) error {
	obj, err := s.object("delete", key)
	if err != nil {
		return err
	}
	_, err = s.client.DeleteObject(ctx, &awss3.DeleteObjectInput{Bucket: &s.bucket, Key: &obj})
	if err != nil {
		if err := s.fail("delete", key, err); !errors.Is(err, gofer.ErrNotFound) {
			return err
		}
	}
	return nil
}

// Walk lists the objects under Prefix + prefix, a page of up to 1,000 at a time; S3 lists
// keys in lexical (UTF-8 byte) order, which is the order Walk promises.
func (s *Store) Walk(ctx context.Context, prefix, after string, fn func(key string, size int64) error) error {
	in := &awss3.ListObjectsV2Input{Bucket: &s.bucket}
	if p := s.prefix + prefix; p != "" {
		in.Prefix = &p
	}
	if after != "" {
		start := s.prefix + after
		in.StartAfter = &start
	}
	pages := awss3.NewListObjectsV2Paginator(s.client, in)
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			return s.fail("walk", prefix, err)
		}
		for _, o := range page.Contents {
			key := strings.TrimPrefix(aws.ToString(o.Key), s.prefix)
			if err := fn(key, aws.ToInt64(o.Size)); err != nil {
				return err
			}
		}
	}
	return nil
}

// PresignGet returns a URL at which anyone can GET the blob under key for ttl (at most 7
// days, SigV4's limit), so that the server can redirect a zip download to the bucket instead
// of streaming it. It is computed locally and does not check that the blob exists; the URL
// names the configured endpoint, which must therefore be reachable by the clients.
func (s *Store) PresignGet(ctx context.Context, key string, ttl time.Duration) (string, error) {
	obj, err := s.object("presign", key)
	if err != nil {
		return "", err
	}
	if ttl <= 0 || ttl > 7*24*time.Hour {
		return "", gofer.Errorf(gofer.ErrInvalid, "s3: presign %q: lifetime %v is not between 0 and 7 days", key, ttl)
	}
	req, err := s.presign.PresignGetObject(ctx, &awss3.GetObjectInput{Bucket: &s.bucket, Key: &obj}, awss3.WithPresignExpires(ttl))
	if err != nil {
		return "", s.fail("presign", key, err)
	}
	return req.URL, nil
}

// fail classifies err, from the S3 call that op on key made, into one of gofer's kinds; this
// is the one place that decides what an S3 failure means:
//   - NoSuchKey, or a 404 (HeadObject has no body to name a code), is gofer.ErrNotFound;
//     but NoSuchBucket is not: a bucket gone is an outage or a misconfiguration, and calling
//     it not found would make the proxy answer 404s that clients cache and never retry.
//   - A failed precondition on a write is gofer.ErrExists: If-None-Match: * found the key
//     taken. 409 ConditionalRequestConflict is not: S3 sends it while a concurrent conditional
//     write is still in flight, which may yet fail and leave no object, so the caller must
//     retry rather than believe the key taken.
//   - Everything else (connection refused, timeouts, 5xx, a cancelled context, and a failed
//     If-Match on a read, meaning the blob changed since Open) is gofer.ErrUnavailable: it may
//     heal, and retrying is the safe answer.
func (s *Store) fail(op, key string, err error) error {
	kind := gofer.ErrUnavailable
	var apiErr smithy.APIError
	code := ""
	if errors.As(err, &apiErr) {
		code = apiErr.ErrorCode()
	}
	st := status(err)
	switch {
	case code == "NoSuchKey" || code == "NotFound" || st == 404 && code != "NoSuchBucket" && code != "NoSuchUpload":
		kind = gofer.ErrNotFound
	case op == "put" && (code == "PreconditionFailed" || st == 412):
		kind = gofer.ErrExists
	}
	return &opError{op: op, key: key, where: s.where, kind: kind, err: err}
}

func (s *Store) exists(op, key string) error {
	return &opError{op: op, key: key, where: s.where, kind: gofer.ErrExists, err: errors.New("the key holds a blob")}
}

// status is the HTTP status of the response that err reports, or 0 if there was none.
func status(err error) int {
	var re *smithyhttp.ResponseError
	if errors.As(err, &re) {
		return re.HTTPStatusCode()
	}
	return 0
}

// opError is a failed S3 call: it matches its kind and the underlying error (such as
// context.Canceled) with errors.Is.
type opError struct {
	op, key, where string
	kind, err      error
}

func (e *opError) Error() string {
	return fmt.Sprintf("s3: %s %q at %s: %v: %v", e.op, e.key, e.where, e.kind, e.err)
}

func (e *opError) Unwrap() []error { return []error{e.kind, e.err} }
