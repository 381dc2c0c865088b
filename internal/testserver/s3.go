package testserver

import (
	"os"
)

// S3Server is versitygw serving a temporary directory (posix backend) over S3.
type S3Server struct {
	*Process
	Endpoint  string // http://127.0.0.1:port
	Region    string
	AccessKey string
	SecretKey string
	Root      string // the directory behind it: <Root>/<bucket>/<key>
}

// S3 starts versitygw with static credentials; buckets are created by the client.
func S3() (*S3Server, error) {
	dir, err := os.MkdirTemp("", "gofer-s3-*")
	if err != nil {
		return nil, err
	}
	port, err := FreePort()
	if err != nil {
		return nil, err
	}
	s := &S3Server{Endpoint: "http://" + hostPort(port), Region: "us-east-1",
		AccessKey: "gofertest", SecretKey: "gofertestsecret", Root: dir}
	s.Process, err = start("versitygw", dir, []string{
		"--access", s.AccessKey, "--secret", s.SecretKey, "--region", s.Region,
		"--port", hostPort(port), "--quiet", "posix", dir}, func() error { return listening(hostPort(port)) })
	return s, err
}
