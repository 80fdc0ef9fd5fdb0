package httpapi

import (
	"bytes"
	"encoding/json"
	"net/http"

	"github.com/labstack/echo/v5"

	"picard.dev/shared"
)

// callTool serves POST /api/tools: {"tool": NAME, "data": {…}} →
// {"result": …}, through the same Registry as MCP.
func (a *API) callTool(c *echo.Context) error {
	req := c.Request()
	body, err := readBody(req, MaxBatchBody)
	if err != nil {
		return err
	}
	var tr shared.ToolRequest
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&tr); err != nil || tr.Tool == "" {
		return &httpError{status: http.StatusBadRequest, body: shared.APIError{
			Code:    shared.CodeInvalidArgument,
			Message: `the body must be a JSON object {"tool": NAME, "data": {…}}`,
		}}
	}
	if len(body) > MaxBody && !a.o.Registry.IsBatch(tr.Tool) {
		return tooLarge(MaxBody)
	}
	out, err := a.o.Registry.Call(req.Context(), tr.Tool, tr.Data)
	if err != nil {
		return err
	}
	result, err := json.Marshal(out)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, shared.ToolResponse{Result: result})
}
