package objstore

import (
	"strings"
	"testing"
)

// Issue 19 rules applied to issue 25: an s3:// URL is user input; a prefix
// that could name another place (.., empty segments, control bytes) is refused.
func TestHostileParseURL(t *testing.T) {
	tests := []struct {
		in      string
		want    URL
		wantErr string
	}{
		{in: "s3://bucket", want: URL{Bucket: "bucket"}},
		{in: "s3://my.bucket-1/a/b/", want: URL{Bucket: "my.bucket-1", Prefix: "a/b"}},
		{in: "s3://bucket/cache/sha256-abc", want: URL{Bucket: "bucket", Prefix: "cache/sha256-abc"}},
		{in: "/local/path", wantErr: "want s3://"},
		{in: "s3://", wantErr: "3 to 63"},
		{in: "s3://ab", wantErr: "3 to 63"},
		{in: "s3://Bucket", wantErr: "lower-case"},
		{in: "s3://-bucket", wantErr: "start and end"},
		{in: "s3://a..b", wantErr: "two dots"},
		{in: "s3://bucket/../other", wantErr: "'..' segment"},
		{in: "s3://bucket/a//b", wantErr: "empty"},
		{in: "s3://bucket/./a", wantErr: "'.'"},
		{in: "s3://bucket//a", wantErr: "leading slash"},
		{in: "s3://bucket/a\nb", wantErr: "control byte"},
		{in: "s3://bucket/a\\b", wantErr: "backslash"},
		{in: "s3://bucket/" + strings.Repeat("x", 1000), wantErr: "more than"},
	}
	for _, tt := range tests {
		got, err := ParseURL(tt.in)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("ParseURL(%q) = %v, %v; want error containing %q", tt.in, got, err, tt.wantErr)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("ParseURL(%q) = %+v, %v; want %+v", tt.in, got, err, tt.want)
		}
		if back, err := ParseURL(got.String()); err != nil || back != got {
			t.Errorf("ParseURL(%q).String() = %q does not parse back: %+v, %v", tt.in, got.String(), back, err)
		}
	}
}

func TestURLKey(t *testing.T) {
	if k := (URL{Bucket: "b", Prefix: "p/q"}).Key("x/artifact.json"); k != "p/q/x/artifact.json" {
		t.Errorf("Key = %q", k)
	}
	if k := (URL{Bucket: "b"}).Key("f"); k != "f" {
		t.Errorf("root Key = %q", k)
	}
	u := URL{Bucket: "b", Prefix: "p"}
	if _, err := u.Join("../q"); err == nil {
		t.Errorf("Join(../q) escaped the prefix")
	}
	if j, err := u.Join("sub"); err != nil || j.Prefix != "p/sub" {
		t.Errorf("Join(sub) = %v, %v", j, err)
	}
}

func TestConfigFromEnv(t *testing.T) {
	tests := []struct {
		name    string
		env     map[string]string
		want    Config
		wantErr string
	}{
		{name: "aws", env: map[string]string{"AWS_REGION": "eu-west-1", "AWS_PROFILE": "ci"}, want: Config{Region: "eu-west-1", Profile: "ci"}},
		{name: "endpoint implies path style", env: map[string]string{"AWS_ENDPOINT_URL": "http://127.0.0.1:7070"},
			want: Config{Endpoint: "http://127.0.0.1:7070", PathStyle: true}},
		{name: "s3 endpoint wins", env: map[string]string{"AWS_ENDPOINT_URL": "http://a", "AWS_ENDPOINT_URL_S3": "http://b"},
			want: Config{Endpoint: "http://b", PathStyle: true}},
		{name: "virtual hosts asked for", env: map[string]string{"AWS_ENDPOINT_URL": "http://a", "MDLM_S3_PATH_STYLE": "false"},
			want: Config{Endpoint: "http://a"}},
		{name: "force path style", env: map[string]string{"AWS_S3_FORCE_PATH_STYLE": "1"}, want: Config{PathStyle: true}},
		{name: "bad bool", env: map[string]string{"MDLM_S3_PATH_STYLE": "maybe"}, wantErr: "MDLM_S3_PATH_STYLE"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, k := range []string{"AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE", "AWS_S3_FORCE_PATH_STYLE", "MDLM_S3_PATH_STYLE"} {
				t.Setenv(k, tt.env[k])
			}
			got, err := ConfigFromEnv()
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("ConfigFromEnv() = %+v, %v; want %+v", got, err, tt.want)
			}
		})
	}
}
