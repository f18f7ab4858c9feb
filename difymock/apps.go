package difymock

// App keys besides the chatflows and the agent (config.go). Every key is "app-" and 24
// characters, like Dify's.
const (
	// ChatAppKey selects a basic chat app (mode "chat"): message chunks, message_end.
	ChatAppKey = "app-mockchatapp0000000000000"
	// CompletionAppKey selects a text-generation app (mode "completion") on
	// POST /v1/completion-messages.
	CompletionAppKey = "app-mockcompletionapp0000000"
	// WorkflowAppKey selects a workflow app (mode "workflow") on POST /v1/workflows/run:
	// Start → LLM → End, answer in text_chunk, terminal workflow_finished.
	WorkflowAppKey = "app-mockworkflowapp000000000"
	// RequiredInputsChatKey selects a chatflow like the simple one whose Start node has the
	// required input "dept". Without it, inline versions answer 400 invalid_param "dept is
	// required in input form"; 1.13 relays answer 200, one ping and silence.
	RequiredInputsChatKey = "app-mockrequiredinputs000000"
	// HumanInputChatKey selects a chatflow with a human-input node after Start: its stream
	// sends human_input_required, then workflow_paused, and ends.
	HumanInputChatKey = "app-mockhumaninputchat000000"
)

// App names in Truth.Apps, Truth.Conversations and Record.App.
const (
	AppSimpleChatflow   = "simple_chatflow"
	AppComplexChatflow  = "complex_chatflow"
	AppAgent            = "agent"
	AppChat             = "chat"
	AppCompletion       = "completion"
	AppWorkflow         = "workflow"
	AppRequiredChatflow = "required_chatflow"
	AppHumanInput       = "human_input_chatflow"
)

// appKind is an app's index in the app table and in the per-app truth.
type appKind uint8

const (
	appSimple appKind = iota
	appComplex
	appAgent
	appChat
	appCompletion
	appWorkflow
	appRequired
	appHuman
	numApps
)

// wire is the event prefix family of an app mode (docs/dify-wire.md, "SSE framing").
type wire uint8

const (
	wireChat       wire = iota // event, conversation_id, message_id, created_at, task_id
	wireCompletion             // event, message_id, created_at, task_id
	wireWorkflow               // event, workflow_run_id, task_id
)

// app is one mock Dify app.
type app struct {
	name     string // truth name
	mode     string // Dify mode
	id       string
	wfID     string // workflow id (chatflows, workflow app)
	endpoint string // the one endpoint that serves it
	wire     wire
	agent    bool
	nodes    bool // a chatflow: emits workflow/node events around message chunks
	required string
	kind     appKind
}

// relayed reports whether Dify 1.13 runs this app's streaming requests in a job worker
// and relays their events (chatflows and workflow apps).
func (a *app) relayed() bool { return a.nodes || a.wire == wireWorkflow }

// conversational reports whether the app keeps conversations (the chat-messages apps).
func (a *app) conversational() bool { return a.endpoint == EndpointChat }

// appTable returns the mock's apps, indexed by kind. (A function, not a package variable:
// the table is rebuilt per call, which costs less than one frame write.)
func appTable() [numApps]app {
	return [numApps]app{
		appSimple:     {name: AppSimpleChatflow, mode: "advanced-chat", id: "5b3d9a61-7c2e-4f80-9d14-2a6b8c0e1f31", wfID: "8e2f4a10-1c3b-4d5e-8f60-7a8b9c0d1e21", endpoint: EndpointChat, nodes: true, kind: appSimple},
		appComplex:    {name: AppComplexChatflow, mode: "advanced-chat", id: "a1c4e7f0-2b5d-4e8a-9c1f-3d6e9a2b5c72", wfID: "c3e5a7b9-1d2f-4a6c-8e0b-2d4f6a8c0e43", endpoint: EndpointChat, nodes: true, kind: appComplex},
		appAgent:      {name: AppAgent, mode: "agent-chat", id: "e9f1b3d5-7a2c-4e6b-8d0f-1a3c5e7b9d14", endpoint: EndpointChat, agent: true, kind: appAgent},
		appChat:       {name: AppChat, mode: "chat", id: "2d4f6a8c-0e1b-4c3d-9e5f-7a9b1c3d5e60", endpoint: EndpointChat, kind: appChat},
		appCompletion: {name: AppCompletion, mode: "completion", id: "6a8c0e2f-4b1d-4e3f-8a5b-9c1d3e5f7a82", endpoint: EndpointCompletion, wire: wireCompletion, kind: appCompletion},
		appWorkflow:   {name: AppWorkflow, mode: "workflow", id: "9c1e3a5b-7d2f-4a6c-8e0b-1d3f5a7c9e24", wfID: "b2d4f6a8-0c1e-4b3d-9f5a-7c9e1b3d5f46", endpoint: EndpointWorkflow, wire: wireWorkflow, kind: appWorkflow},
		appRequired:   {name: AppRequiredChatflow, mode: "advanced-chat", id: "4e6a8c0e-2b1d-4f3a-9c5e-7b9d1f3a5c68", wfID: "d5f7b9d1-3e2a-4c6e-8a0c-2e4a6c8e0a13", endpoint: EndpointChat, nodes: true, required: "dept", kind: appRequired},
		appHuman:      {name: AppHumanInput, mode: "advanced-chat", id: "7b9d1f3a-5c2e-4a6b-8d0f-3a5c7e9b1d35", wfID: "e6a8c0e2-4f3b-4d5a-9e1c-3f5b7d9f1b57", endpoint: EndpointChat, nodes: true, kind: appHuman},
	}
}

func (k appKind) name() string { t := appTable(); return t[k].name }

func appForKey(key string) *app {
	var k appKind
	switch key {
	case SimpleChatKey:
		k = appSimple
	case ComplexChatKey:
		k = appComplex
	case AgentChatKey:
		k = appAgent
	case ChatAppKey:
		k = appChat
	case CompletionAppKey:
		k = appCompletion
	case WorkflowAppKey:
		k = appWorkflow
	case RequiredInputsChatKey:
		k = appRequired
	case HumanInputChatKey:
		k = appHuman
	default:
		return nil
	}
	a := appTable()[k]
	return &a
}
