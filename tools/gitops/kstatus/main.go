// Command kstatus prints what sigs.k8s.io/cli-utils' kstatus library computes for one object.
//
// It reads the object as JSON on stdin (what `kubectl get -o json` prints) and writes
// {"status": ..., "message": ...} on stdout: Current, InProgress, Failed, Terminating,
// NotFound or Unknown. The project's e2e tests feed it the LokifiStorage objects the operator
// writes, so "the conditions satisfy kstatus" is checked by the library Flux and kpt use, not by
// a re-implementation of its rules.
package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
)

type result struct {
	Status  string `json:"status"`
	Message string `json:"message"`
}

func main() {
	if err := run(os.Stdin, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "kstatus:", err)
		os.Exit(1)
	}
}

func run(in io.Reader, out io.Writer) error {
	data, err := io.ReadAll(in)
	if err != nil {
		return fmt.Errorf("reading stdin: %w", err)
	}
	obj := &unstructured.Unstructured{}
	if err := obj.UnmarshalJSON(data); err != nil {
		return fmt.Errorf("decoding the object: %w", err)
	}
	res, err := status.Compute(obj)
	if err != nil {
		return fmt.Errorf("computing the status: %w", err)
	}
	return json.NewEncoder(out).Encode(result{Status: res.Status.String(), Message: res.Message})
}
