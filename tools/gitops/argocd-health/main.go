// Command argocd-health runs an Argo CD resource health script on one object, in the Lua
// virtual machine Argo CD itself embeds (github.com/yuin/gopher-lua, Lua 5.1).
//
// It reads the script's path from its first argument and the object as JSON on stdin (what
// `kubectl get -o json` prints), and writes {"status": ..., "message": ...} on stdout. The
// virtual machine is set up the way Argo CD's util/lua sets it up for health checks, so a script
// that passes here behaves the same in Argo CD:
//   - only the package, base and table libraries are open (no string, math, io or os: a script
//     calling string.format fails here as it would there);
//   - the object becomes the global `obj`, JSON numbers as Lua numbers (float64), arrays as
//     1-based tables, null as nil;
//   - the script must finish within one second and return a table whose status is one of
//     Healthy, Progressing, Degraded, Suspended, Missing or Unknown; another status reads as
//     Unknown with Argo CD's message, and a non-table return is an error.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"time"

	lua "github.com/yuin/gopher-lua"
)

type result struct {
	Status  string `json:"status"`
	Message string `json:"message"`
}

// The health statuses Argo CD accepts from a script (gitops-engine's health package).
var validStatus = map[string]bool{
	"Healthy": true, "Progressing": true, "Degraded": true,
	"Suspended": true, "Missing": true, "Unknown": true,
}

const invalidHealthStatus = "Lua returned an invalid health status"

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: argocd-health SCRIPT.lua < object.json")
		os.Exit(2)
	}
	if err := run(os.Args[1], os.Stdin, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "argocd-health:", err)
		os.Exit(1)
	}
}

func run(scriptPath string, in io.Reader, out io.Writer) error {
	script, err := os.ReadFile(scriptPath)
	if err != nil {
		return fmt.Errorf("reading the script: %w", err)
	}
	data, err := io.ReadAll(in)
	if err != nil {
		return fmt.Errorf("reading stdin: %w", err)
	}
	var obj map[string]interface{}
	if err := json.Unmarshal(data, &obj); err != nil {
		return fmt.Errorf("decoding the object: %w", err)
	}

	l := lua.NewState(lua.Options{SkipOpenLibs: true})
	defer l.Close()
	for _, lib := range []struct {
		name string
		open lua.LGFunction
	}{
		{lua.LoadLibName, lua.OpenPackage},
		{lua.BaseLibName, lua.OpenBase},
		{lua.TabLibName, lua.OpenTable},
	} {
		if err := l.CallByParam(lua.P{Fn: l.NewFunction(lib.open), NRet: 0, Protect: true},
			lua.LString(lib.name)); err != nil {
			return fmt.Errorf("opening %s: %w", lib.name, err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	l.SetContext(ctx)
	l.SetGlobal("obj", toLua(l, obj))
	if err := l.DoString(string(script)); err != nil {
		return fmt.Errorf("running the script: %w", err)
	}

	returned := l.Get(-1)
	table, ok := returned.(*lua.LTable)
	if !ok {
		return fmt.Errorf("expect table output from Lua script, not %s", returned.Type())
	}
	res := result{
		Status:  lua.LVAsString(table.RawGetString("status")),
		Message: lua.LVAsString(table.RawGetString("message")),
	}
	if !validStatus[res.Status] {
		res = result{Status: "Unknown", Message: invalidHealthStatus}
	}
	return json.NewEncoder(out).Encode(res)
}

// toLua converts decoded JSON the way Argo CD hands an object to its scripts.
func toLua(l *lua.LState, value interface{}) lua.LValue {
	switch v := value.(type) {
	case bool:
		return lua.LBool(v)
	case float64:
		return lua.LNumber(v)
	case string:
		return lua.LString(v)
	case []interface{}:
		arr := l.CreateTable(len(v), 0)
		for _, item := range v {
			arr.Append(toLua(l, item))
		}
		return arr
	case map[string]interface{}:
		tbl := l.CreateTable(0, len(v))
		for key, item := range v {
			tbl.RawSetH(lua.LString(key), toLua(l, item))
		}
		return tbl
	}
	return lua.LNil
}
