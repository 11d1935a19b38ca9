// h2spec command for distpoint's CI, written here because the h2spec 2.6
// source in ../shared/tools/h2spec-src lacks its cmd/h2spec/h2spec.go (so
// ../shared/tools/build-h2spec.sh fails with "cannot find package
// github.com/summerwind/h2spec/cmd/h2spec"). It takes the subset of the
// upstream flags that .ci/h2spec.sh uses, with the same meaning, and runs
// the same h2spec.Run.
package main

import (
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/summerwind/h2spec"
	"github.com/summerwind/h2spec/config"
)

func main() {
	c := &config.Config{}
	flag.StringVar(&c.Host, "h", "127.0.0.1", "target host")
	flag.IntVar(&c.Port, "p", 0, "target port")
	flag.StringVar(&c.Path, "P", "/", "target path")
	timeout := flag.Int("o", 2, "time seconds to test timeout")
	flag.IntVar(&c.MaxHeaderLen, "max-header-length", 4000, "maximum length of HTTP header")
	flag.StringVar(&c.JUnitReport, "j", "", "path for JUnit test report")
	flag.BoolVar(&c.Strict, "S", false, "run in strict mode")
	flag.BoolVar(&c.TLS, "t", false, "connect over TLS")
	flag.BoolVar(&c.Insecure, "k", false, "do not verify the server's certificate")
	flag.BoolVar(&c.Verbose, "v", false, "output verbose log")
	flag.BoolVar(&c.DryRun, "dryrun", false, "display only the title of test cases")
	flag.Parse()
	c.Timeout = time.Duration(*timeout) * time.Second
	c.Sections = flag.Args()
	if c.Port == 0 {
		fmt.Fprintln(os.Stderr, "h2spec: -p PORT is required")
		os.Exit(1)
	}
	ok, err := h2spec.Run(c)
	if err != nil {
		fmt.Fprintln(os.Stderr, "h2spec:", err)
		os.Exit(1)
	}
	if !ok {
		os.Exit(1)
	}
}
