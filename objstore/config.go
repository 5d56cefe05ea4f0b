package objstore

import (
	"fmt"
	"os"
	"strconv"
	"strings"
)

// Config says which store to talk to and how. Credentials are not part of it:
// they come from the AWS SDK's default chain (AWS_ACCESS_KEY_ID and
// AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, the shared credentials and config
// files with AWS_PROFILE, SSO, web identity, the instance role), unless
// AccessKey and SecretKey are set explicitly (tests).
type Config struct {
	// Endpoint of an S3-compatible store, e.g. http://127.0.0.1:7070; from
	// AWS_ENDPOINT_URL_S3, else AWS_ENDPOINT_URL, else the profile's
	// endpoint_url; empty means AWS itself.
	Endpoint string
	// Region; from AWS_REGION, AWS_DEFAULT_REGION or the profile; us-east-1
	// when none says and an Endpoint is set.
	Region string
	// Profile of the shared config files; from AWS_PROFILE.
	Profile string
	// PathStyle addresses buckets as endpoint/bucket/key instead of
	// bucket.endpoint/key; from MDLM_S3_PATH_STYLE or AWS_S3_FORCE_PATH_STYLE
	// (true/false), and on by default when an Endpoint is set (what
	// self-hosted stores serve).
	PathStyle bool
	// AccessKey and SecretKey, when both are set, replace the default chain.
	AccessKey, SecretKey string
}

// ConfigFromEnv reads the Config the environment gives (see the fields).
func ConfigFromEnv() (Config, error) {
	c := Config{
		Endpoint: firstEnv("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"),
		Region:   firstEnv("AWS_REGION", "AWS_DEFAULT_REGION"),
		Profile:  os.Getenv("AWS_PROFILE"),
	}
	c.PathStyle = c.Endpoint != ""
	for _, name := range []string{"AWS_S3_FORCE_PATH_STYLE", "MDLM_S3_PATH_STYLE"} {
		v := strings.TrimSpace(os.Getenv(name))
		if v == "" {
			continue
		}
		b, err := strconv.ParseBool(v)
		if err != nil {
			return c, fmt.Errorf("$%s=%q: want true or false", name, v)
		}
		c.PathStyle = b
	}
	return c, nil
}

func firstEnv(names ...string) string {
	for _, n := range names {
		if v := strings.TrimSpace(os.Getenv(n)); v != "" {
			return v
		}
	}
	return ""
}
