package main

import (
	"log/slog"
	"sort"
	"strings"

	"github.com/difyload/difyload/runner"
	"github.com/difyload/difyload/tasks"
	"github.com/difyload/difyload/worker"
	"github.com/difyload/difyload/workload"
)

// classSwitch follows the workloads the master sends (locustfile.py sends one at every
// test start): it rebuilds the worker's user classes from each, goes back to the built-in
// classes when the master runs without --dify-workload, and applies the web UI's class
// editor (update_user_class). It runs on the worker's loop goroutine (Config.OnMessage).
type classSwitch struct {
	wr      *wiring
	w       *worker.Worker
	log     *slog.Logger
	current []runner.UserClass
	only    []string // class names given on the command line (difyload worker ChatUser)
	// updates are the master's update_user_class settings by class name: they outlive a
	// workload rebuild, as they outlive a test on the master's own classes.
	updates map[string]map[string]any
}

func (s *classSwitch) onMessage(typ string, data any) {
	switch typ {
	case workload.MessageType:
		s.apply(data)
	case "update_user_class":
		s.update(data)
	}
}

func (s *classSwitch) apply(data any) {
	if m, ok := data.(map[string]any); ok && m["default"] == true {
		s.set(s.wr.classes, workload.DefaultSource)
		return
	}
	wl, err := workload.FromMessage(data)
	var classes []runner.UserClass
	if err == nil {
		classes, err = s.wr.classesFor(wl)
	}
	if err != nil {
		// Run nothing rather than something different; stay connected for the next one.
		s.log.Error("refusing the master's workload: this worker runs no users until the master sends one it can run", "err", err)
		s.w.ReportException("difyload worker cannot run the master's workload: "+err.Error(),
			"  in difyload worker: refused workload "+workloadProblems(err)+"\n")
		s.set(nil, "")
		return
	}
	s.set(classes, wl.Source)
}

func (s *classSwitch) set(classes []runner.UserClass, source string) {
	classes = keepNamed(classes, s.only)
	if err := s.w.SetClasses(classes); err != nil {
		s.log.Error("cannot use the workload's classes", "err", err)
		return
	}
	s.current = classes
	for _, c := range classes {
		if tc, ok := c.(*tasks.Class); ok && s.updates[tc.Name()] != nil {
			tc.Update(s.updates[tc.Name()])
		}
	}
	if source != "" {
		names := make([]string, len(classes))
		for i, c := range classes {
			names[i] = c.Name()
		}
		sort.Strings(names)
		s.log.Info("workload from the master", "source", source, "classes", strings.Join(names, ","))
	}
}

// update applies update_user_class ({"user_class_name": …, "host": …, "tasks": […], …}).
func (s *classSwitch) update(data any) {
	m, ok := data.(map[string]any)
	if !ok {
		return
	}
	name, _ := m["user_class_name"].(string)
	if s.updates == nil {
		s.updates = map[string]map[string]any{}
	}
	s.updates[name] = m
	for _, c := range s.current {
		if tc, ok := c.(*tasks.Class); ok && tc.Name() == name {
			tc.Update(m)
			s.log.Info("user class updated by the master", "class", name)
			return
		}
	}
	s.log.Warn("update_user_class for a class this worker does not have", "class", name)
}

// workloadProblems is a short traceback line: the places of the problems.
func workloadProblems(err error) string {
	var places []string
	for _, e := range workload.Errors(err) {
		if e.Place != "" {
			places = append(places, e.Place)
		}
	}
	if len(places) == 0 {
		return "(see the message)"
	}
	return "at " + strings.Join(places, ", ")
}
