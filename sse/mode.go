package sse

// Mode is the Dify app mode a request goes to. It selects which events carry
// the answer and which event ends a successful stream, following Dify's own
// task pipeline for that mode. The values are the workload file's app types.
type Mode string

// The Dify app modes. The zero value ("") keeps the behaviour of a chatflow
// on /v1/chat-messages, which is what difyload drove before modes existed.
const (
	ModeChat       Mode = "chat"       // basic chat app: message … message_end
	ModeAgent      Mode = "agent"      // agent-chat: agent_thought, agent_message … message_end
	ModeChatflow   Mode = "chatflow"   // advanced-chat: workflow events around message … message_end
	ModeCompletion Mode = "completion" // text generation on /v1/completion-messages
	ModeWorkflow   Mode = "workflow"   // /v1/workflows/run: text_chunk … workflow_finished
)
