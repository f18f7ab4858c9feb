package runner

import (
	"errors"
	"fmt"
	"reflect"
	"runtime/debug"
	"strings"
)

// The master groups exceptions by hash(traceback) and counts one per
// message. A traceback therefore has to be stable: the same panic at the
// same place must give byte-identical text, with no goroutine ids, argument
// values, pointers or PC offsets.

// stackFrame is one frame of a Go stack trace.
type stackFrame struct {
	Func, File, Line string
}

// parseStack parses the text of debug.Stack() (or a goroutine dump) into
// frames, innermost first. Lines it doesn't understand are skipped.
func parseStack(stack string) []stackFrame {
	lines := strings.Split(stack, "\n")
	var frames []stackFrame
	for i := 0; i+1 < len(lines); i++ {
		fn := lines[i]
		if strings.HasPrefix(fn, "goroutine ") || strings.HasPrefix(fn, "created by ") || strings.HasPrefix(fn, "\t") || fn == "" {
			continue
		}
		file, line, ok := parseFileLine(lines[i+1])
		if !ok {
			continue
		}
		if strings.HasSuffix(fn, ")") {
			if j := strings.LastIndexByte(fn, '('); j > 0 {
				fn = fn[:j]
			}
		}
		frames = append(frames, stackFrame{Func: fn, File: file, Line: line})
		i++
	}
	return frames
}

// panicTraceback formats the frames between the panic and the scheduler's
// recover, outermost first, in Python's traceback.format_tb style so the
// Locust UI shows something familiar:
//
//	File "/src/tasks/chat.go", line 42, in github.com/difyload/difyload/tasks.(*chatUser).RunTask
//
// stack is debug.Stack() taken inside the deferred recover.
func panicTraceback(stack string) string {
	frames := parseStack(stack)
	// Drop everything up to and including the runtime's panic frame(s)...
	start := 0
	for i, f := range frames {
		if f.Func == "panic" || strings.HasPrefix(f.Func, "runtime.gopanic") || strings.HasPrefix(f.Func, "runtime.panic") || strings.HasPrefix(f.Func, "runtime.sigpanic") {
			start = i + 1
		}
	}
	if start == 0 {
		// No panic frame (not called from a deferred recover): drop debug.Stack itself.
		for i, f := range frames {
			if strings.HasPrefix(f.Func, "runtime/debug.Stack") {
				start = i + 1
			}
		}
	}
	frames = frames[start:]
	// ...and everything from the scheduler's own frames outwards.
	for i, f := range frames {
		if strings.Contains(f.Func, "/runner.") && strings.Contains(f.Func, "Scheduler") || strings.Contains(f.Func, "/runner.runTaskSafely") {
			frames = frames[:i]
			break
		}
	}
	var b strings.Builder
	for i := len(frames) - 1; i >= 0; i-- {
		f := frames[i]
		fmt.Fprintf(&b, "  File %q, line %s, in %s\n", f.File, f.Line, f.Func)
	}
	if b.Len() == 0 {
		return "  (no Go frames)\n"
	}
	return b.String()
}

// PanicMessage renders a recovered panic value like Python's str(exception).
func PanicMessage(r any) string {
	var s string
	switch v := r.(type) {
	case error:
		s = v.Error()
	case string:
		s = v
	default:
		s = fmt.Sprint(v)
	}
	return maskHexAddrs(s)
}

// parseFileLine parses "\t/path/file.go:42 +0x1d" into file and line.
func parseFileLine(s string) (file, line string, ok bool) {
	s, ok = strings.CutPrefix(s, "\t")
	if !ok {
		return "", "", false
	}
	if j := strings.LastIndex(s, " +0x"); j >= 0 {
		s = s[:j]
	}
	j := strings.LastIndexByte(s, ':')
	if j <= 0 || j == len(s)-1 {
		return "", "", false
	}
	for _, c := range s[j+1:] {
		if c < '0' || c > '9' {
			return "", "", false
		}
	}
	return s[:j], s[j+1:], true
}

// maskHexAddrs replaces "0x" followed by 6 or more hex digits (pointers)
// with "0x...", like Locust masks "object at 0x…".
func maskHexAddrs(s string) string {
	if !strings.Contains(s, "0x") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		if strings.HasPrefix(s[i:], "0x") {
			j := i + 2
			for j < len(s) && isHex(s[j]) {
				j++
			}
			if j-(i+2) >= 6 {
				b.WriteString("0x...")
				i = j
				continue
			}
		}
		b.WriteByte(s[i])
		i++
	}
	return b.String()
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

// errorTraceback is the stable "traceback" of a task that returned an
// error: the class and the chain of error types (not the text, which may
// carry request ids), so one row per kind of error.
func errorTraceback(class string, err error) string {
	var b strings.Builder
	fmt.Fprintf(&b, "  in %s.RunTask: returned an error\n", class)
	for e := err; e != nil; {
		fmt.Fprintf(&b, "    %s\n", reflect.TypeOf(e))
		switch u := e.(type) {
		case interface{ Unwrap() []error }:
			errs := u.Unwrap()
			if len(errs) == 0 {
				e = nil
			} else {
				e = errs[0]
			}
		default:
			e = errors.Unwrap(e)
		}
	}
	return b.String()
}

// stackNow is debug.Stack as a string (a seam for tests).
func stackNow() string { return string(debug.Stack()) }
