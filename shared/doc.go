// Package shared holds the wire types that mcpserver and webclient both
// speak: the memory object, tool names and their arguments and results,
// OAuth scopes and API error codes. It is a leaf: it imports no sibling
// module and no third-party package, so either side can depend on it
// without dragging in the other's dependencies.
package shared
