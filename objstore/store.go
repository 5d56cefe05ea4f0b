package objstore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"
)

// Limits and defaults; README's limits table lists them. Variables so tests
// can lower them.
var (
	// DefaultPartSize is the multipart part and ranged-read size; files up
	// to it go up in one PUT and come down in one GET.
	DefaultPartSize int64 = 64 << 20
	// DefaultWorkers is the number of transfers in flight.
	DefaultWorkers = 8
	// MaxFileSize caps the size a manifest may give one file.
	MaxFileSize int64 = 1 << 40
	// MaxParts is S3's limit on the parts of one multipart upload.
	MaxParts int64 = 10000
)

// ErrNoArtifact means a prefix holds no committed artifact (no manifest).
var ErrNoArtifact = errors.New("no artifact (no artifact.json)")

// DefaultMaxAttempts is how often one request is tried when the AWS
// configuration does not say (AWS_MAX_ATTEMPTS, max_attempts); the SDK's
// standard retryer backs off exponentially between tries.
const DefaultMaxAttempts = 8

// Store reads and writes artifacts on one S3-compatible endpoint.
type Store struct {
	client   *s3.Client
	PartSize int64
	Workers  int
	Log      *slog.Logger
	secrets  []string // redacted from every error
	// afterPart, when set (tests), runs after each part or single-object
	// upload of a data file.
	afterPart func(key string, part int32)
}

// New connects to the store cfg names. It sends nothing yet.
func New(ctx context.Context, cfg Config) (*Store, error) {
	var opts []func(*config.LoadOptions) error
	if cfg.Profile != "" {
		opts = append(opts, config.WithSharedConfigProfile(cfg.Profile))
	}
	if cfg.Region != "" {
		opts = append(opts, config.WithRegion(cfg.Region))
	}
	if cfg.AccessKey != "" && cfg.SecretKey != "" {
		opts = append(opts, config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider(cfg.AccessKey, cfg.SecretKey, "")))
	}
	ac, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("object store: AWS configuration (profile %q): %w", cfg.Profile, err)
	}
	if ac.Region == "" {
		ac.Region = "us-east-1"
	}
	s := &Store{PartSize: DefaultPartSize, Workers: DefaultWorkers, Log: slog.Default()}
	s.client = s3.NewFromConfig(ac, func(o *s3.Options) {
		if cfg.Endpoint != "" {
			o.BaseEndpoint = aws.String(cfg.Endpoint)
		}
		o.UsePathStyle = cfg.PathStyle
		if ac.RetryMaxAttempts == 0 { // AWS_MAX_ATTEMPTS or max_attempts not set
			// A large artifact is hundreds of requests; a dropped connection
			// to one of them (a busy gateway, seen on loopback at load 10)
			// should not fail the whole transfer after the SDK's default 3.
			o.RetryMaxAttempts = DefaultMaxAttempts
		}
		// Sizes and sha256 are checked against the manifest; the SDK's own
		// CRC trailers are not needed and not every compatible store has them.
		o.RequestChecksumCalculation = aws.RequestChecksumCalculationWhenRequired
		o.ResponseChecksumValidation = aws.ResponseChecksumValidationWhenRequired
	})
	s.secrets = secretsOf(ctx, ac, cfg)
	return s, nil
}

// secretsOf lists the credential strings that must never appear in an error.
func secretsOf(ctx context.Context, ac aws.Config, cfg Config) []string {
	out := []string{cfg.AccessKey, cfg.SecretKey}
	if ac.Credentials != nil {
		if c, err := ac.Credentials.Retrieve(ctx); err == nil {
			out = append(out, c.AccessKeyID, c.SecretAccessKey, c.SessionToken)
		}
	}
	var keep []string
	for _, s := range out {
		if len(s) >= 4 {
			keep = append(keep, s)
		}
	}
	return keep
}

// Error is a failed store operation: the URL and the operation, the store's
// error code, and a hint; never a credential.
type Error struct {
	URL  string
	Op   string
	Code string
	msg  string
	err  error
}

func (e *Error) Error() string { return e.msg }

// Unwrap gives context cancellation and ErrNoArtifact to errors.Is, nothing
// that could carry a credential.
func (e *Error) Unwrap() error { return e.err }

// fail turns an SDK error into an *Error naming the bucket and key.
func (s *Store) fail(u URL, op, key string, err error) error {
	if err == nil {
		return nil
	}
	where := u.String()
	if key != "" {
		where = "s3://" + u.Bucket + "/" + key
	}
	e := &Error{URL: where, Op: op, err: codeError{err}}
	var api smithy.APIError
	var detail string
	if errors.As(err, &api) {
		e.Code = api.ErrorCode()
		detail = api.ErrorCode() + ": " + api.ErrorMessage()
	} else {
		detail = err.Error()
	}
	switch {
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		e.err = err
		detail = "interrupted: " + s.redact(err.Error())
	case e.Code == "NoSuchBucket":
		detail = fmt.Sprintf("bucket %q does not exist (create it, or check the endpoint and region)", u.Bucket)
	case credentialCode(e.Code) || statusOf(err) == http.StatusForbidden:
		detail = fmt.Sprintf("access to bucket %q denied (%s): check the credentials (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or AWS_PROFILE) and their rights on the bucket", u.Bucket, e.Code)
	}
	e.msg = s.redact(fmt.Sprintf("object store: %s %s: %s", op, where, detail))
	return e
}

// codeError passes on the store's error code and HTTP status (errors.As on
// smithy.APIError) but prints nothing of the SDK's message.
type codeError struct{ err error }

func (c codeError) Error() string { return "store error" }
func (c codeError) Unwrap() error { return c.err }

// credentialCode reports whether a store error code means the credentials
// were refused (AWS's codes, and those of compatible stores such as Versity's
// XAdminUserNotFound).
func credentialCode(code string) bool {
	switch code {
	case "InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied", "Forbidden", "InvalidToken", "ExpiredToken", "InvalidClientTokenId":
		return true
	}
	return strings.Contains(code, "UserNotFound") || strings.Contains(code, "AccessKey")
}

func statusOf(err error) int {
	var re interface{ HTTPStatusCode() int }
	if errors.As(err, &re) {
		return re.HTTPStatusCode()
	}
	return 0
}

func (s *Store) redact(msg string) string {
	for _, sec := range s.secrets {
		msg = strings.ReplaceAll(msg, sec, "[redacted]")
	}
	return msg
}

func isNotFound(err error) bool {
	var api smithy.APIError
	if errors.As(err, &api) {
		switch api.ErrorCode() {
		case "NoSuchKey", "NotFound", "NoSuchUpload":
			return true
		}
		return false // a 404 with another code (NoSuchBucket, a store's unknown-user) is no absent object
	}
	return statusOf(err) == http.StatusNotFound
}

func isCode(err error, code string) bool {
	var api smithy.APIError
	return errors.As(err, &api) && api.ErrorCode() == code
}

// parallel runs fn(i) for i in [0, n) on at most workers goroutines, stopping
// at the first error (the context given to fn is then cancelled).
func parallel(ctx context.Context, workers, n int, fn func(ctx context.Context, i int) error) error {
	if workers < 1 {
		workers = 1
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	next := make(chan int)
	var wg sync.WaitGroup
	var once sync.Once
	var first error
	for range min(workers, n) {
		wg.Go(func() {
			for i := range next {
				if err := fn(ctx, i); err != nil {
					once.Do(func() { first = err; cancel(err) })
				}
			}
		})
	}
feed:
	for i := range n {
		select {
		case next <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	if first == nil && ctx.Err() != nil {
		first = ctx.Err()
	}
	return first
}
