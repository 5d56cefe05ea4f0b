// Package s3test points tests at the S3-compatible server that
// scripts/s3-server.sh starts on loopback (scripts/test.sh starts it in CI).
package s3test

import (
	"crypto/rand"
	"fmt"
	"os"
	"testing"
)

// Prefix sets the standard AWS variables for the test server (endpoint,
// region, keys; no profile, no shared config or credentials files) and
// returns a fresh s3:// prefix of its bucket under area. Without
// MDLM_TEST_S3_ENDPOINT it skips the test.
func Prefix(t testing.TB, area string) string {
	t.Helper()
	ep := os.Getenv("MDLM_TEST_S3_ENDPOINT")
	if ep == "" {
		t.Skip("MDLM_TEST_S3_ENDPOINT is unset: start a server with eval \"$(scripts/s3-server.sh start)\"")
	}
	for k, v := range map[string]string{
		"AWS_ENDPOINT_URL_S3":         ep,
		"AWS_REGION":                  "us-east-1",
		"AWS_ACCESS_KEY_ID":           os.Getenv("MDLM_TEST_S3_ACCESS_KEY"),
		"AWS_SECRET_ACCESS_KEY":       os.Getenv("MDLM_TEST_S3_SECRET_KEY"),
		"AWS_PROFILE":                 "",
		"AWS_CONFIG_FILE":             os.DevNull,
		"AWS_SHARED_CREDENTIALS_FILE": os.DevNull,
	} {
		t.Setenv(k, v)
	}
	b := make([]byte, 6)
	rand.Read(b)
	return fmt.Sprintf("s3://%s/%s/%s-%x", os.Getenv("MDLM_TEST_S3_BUCKET"), area, t.Name(), b)
}

// DataDir is the directory where the test server's POSIX backend keeps its
// objects (data/<bucket>/<key>), for tests that damage an object behind the
// server's back. Without MDLM_TEST_S3_DATA it skips the test.
func DataDir(t testing.TB) string {
	t.Helper()
	data := os.Getenv("MDLM_TEST_S3_DATA")
	if data == "" {
		t.Skip("MDLM_TEST_S3_DATA is unset: the server's files cannot be damaged")
	}
	return data
}
