package trace

import (
	"bufio"
	"fmt"
	"io"
	"os"
)

// LoadAlibabaPods reads an Alibaba v2023 pod list file.
func LoadAlibabaPods(path string) ([]AlibabaPod, error) {
	return readFile(path, "pod list", ReadAlibabaPods)
}

// LoadAlibabaNodes reads an Alibaba v2023 node list file.
func LoadAlibabaNodes(path string) ([]AlibabaNode, error) {
	return readFile(path, "node list", ReadAlibabaNodes)
}

// LoadOrgs reads an organisation shares file.
func LoadOrgs(path string) ([]Org, error) {
	return readFile(path, "organisation shares", ReadOrgs)
}

// LoadPhillyJobs reads a Philly-derived job file.
func LoadPhillyJobs(path string) ([]PhillyJob, error) {
	return readFile(path, "job list", ReadPhillyJobs)
}

func readFile[T any](path, what string, read func(io.Reader, string) (T, error)) (T, error) {
	var zero T
	f, err := os.Open(path)
	if err != nil {
		return zero, fmt.Errorf("%s: %w", what, err)
	}
	defer f.Close()
	return read(bufio.NewReaderSize(f, 1<<16), path)
}
