package mcp_test

import "picard.dev/mcpserver/internal/mcp"

var classify = mcp.Classify
