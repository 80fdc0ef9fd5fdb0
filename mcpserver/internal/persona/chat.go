package persona

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
)

// ChatRequest is one completion a persona asks for.
type ChatRequest struct {
	System      string
	User        string
	Temperature float64
	MaxTokens   int
}

// Chat completes a persona prompt; OpenAIChat implements it, and tests can
// substitute their own.
type Chat interface {
	// Complete returns the answer and the model that produced it. Failures
	// of the provider wrap ErrUnavailable.
	Complete(ctx context.Context, r ChatRequest) (text, model string, err error)
}

// OpenAIConfig configures OpenAIChat.
type OpenAIConfig struct {
	APIKey  string
	BaseURL string // empty: the OpenAI API; any OpenAI-compatible server works
	Model   string // e.g. gpt-4o-mini
	// Timeout bounds each attempt (default 30 s); MaxRetries is the number of
	// retries after the first attempt on 429, 5xx and connection errors
	// (default 2; negative disables).
	Timeout    time.Duration
	MaxRetries int
	HTTPClient *http.Client
}

// OpenAIChat calls a chat completions API with openai-go.
type OpenAIChat struct {
	client openai.Client
	model  string
}

// NewOpenAIChat returns a Chat for cfg; it fails without an API key or model.
func NewOpenAIChat(cfg OpenAIConfig) (*OpenAIChat, error) {
	if cfg.APIKey == "" {
		return nil, errors.New("persona: the chat model needs an API key")
	}
	if cfg.Model == "" {
		return nil, errors.New("persona: no chat model configured")
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 30 * time.Second
	}
	switch {
	case cfg.MaxRetries == 0:
		cfg.MaxRetries = 2
	case cfg.MaxRetries < 0:
		cfg.MaxRetries = 0
	}
	opts := []option.RequestOption{
		option.WithAPIKey(cfg.APIKey),
		option.WithMaxRetries(cfg.MaxRetries),
		option.WithRequestTimeout(cfg.Timeout),
	}
	if cfg.BaseURL != "" {
		opts = append(opts, option.WithBaseURL(cfg.BaseURL))
	}
	if cfg.HTTPClient != nil {
		opts = append(opts, option.WithHTTPClient(cfg.HTTPClient))
	}
	return &OpenAIChat{client: openai.NewClient(opts...), model: cfg.Model}, nil
}

// Complete implements Chat.
func (c *OpenAIChat) Complete(ctx context.Context, r ChatRequest) (string, string, error) {
	resp, err := c.client.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{
		Model: c.model,
		Messages: []openai.ChatCompletionMessageParamUnion{
			openai.SystemMessage(r.System),
			openai.UserMessage(r.User),
		},
		Temperature:         openai.Float(r.Temperature),
		MaxCompletionTokens: openai.Int(int64(r.MaxTokens)),
	})
	if err != nil {
		// The provider's message may quote the request; report only its
		// status so nothing of the prompt or the key reaches the caller.
		var apiErr *openai.Error
		if errors.As(err, &apiErr) {
			return "", "", fmt.Errorf("%w: the provider answered HTTP %d", ErrUnavailable, apiErr.StatusCode)
		}
		if ctx.Err() != nil {
			return "", "", fmt.Errorf("%w: %v", ErrUnavailable, ctx.Err())
		}
		return "", "", fmt.Errorf("%w: the provider could not be reached", ErrUnavailable)
	}
	if len(resp.Choices) == 0 {
		return "", "", fmt.Errorf("%w: the provider returned no answer", ErrUnavailable)
	}
	model := resp.Model
	if model == "" {
		model = c.model
	}
	return resp.Choices[0].Message.Content, model, nil
}
