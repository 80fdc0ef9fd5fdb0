#!/usr/bin/env node
// The whole OAuth 2.1 flow of mcpserver from the official TypeScript MCP SDK
// (@modelcontextprotocol/sdk), headlessly: discovery from the 401,
// dynamic client registration, authorization with PKCE (this script submits
// the login and consent forms, keeping the cookies itself), token, then
// tools/list, submit_memory and query_memory over streamable HTTP, and a
// refresh-token rotation.
//
//   node ts-oauth-flow.mjs MCP_URL EMAIL     (password on stdin)
//
// Needs Node 22 and the SDK installed by scripts/install-node22.sh
// (.tools/mcp; MCP_TOOLS_DIR overrides). Prints one JSON object per step on
// stdout and, last, {"ok": true, …}; exits 1 with {"ok": false, "error": …}
// on any failure. Driven by scripts/mcptools (TestTypeScriptSDKOAuth).
import { readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const toolsDir = resolve(process.env.MCP_TOOLS_DIR || join(here, "..", "..", ".tools", "mcp"));
const sdkDir = join(toolsDir, "node_modules", "@modelcontextprotocol", "sdk", "dist", "esm");
// The SDK lives under .tools/mcp, not beside this script, so it is imported
// by file URL (ESM does not search NODE_PATH).
const sdk = (p) => import(pathToFileURL(join(sdkDir, p)).href);

const { Client } = await sdk("client/index.js");
const { StreamableHTTPClientTransport } = await sdk("client/streamableHttp.js");
const { auth, UnauthorizedError } = await sdk("client/auth.js");

const step = (name, details = {}) => console.log(JSON.stringify({ step: name, ...details }));

const [mcpURL, email] = process.argv.slice(2);
if (!mcpURL || !email) {
	console.error("usage: node ts-oauth-flow.mjs MCP_URL EMAIL  (password on stdin)");
	process.exit(2);
}
const password = readFileSync(0, "utf8").replace(/\r?\n$/, "");
const SCOPES = "memories:read memories:write";
// Never listened on: the final redirect is read from the Location header.
const REDIRECT_URL = "http://127.0.0.1:53682/callback";

// A user agent with its own cookie jar that follows redirects only within
// the authorization server's origin, and submits its login and consent forms.
class HeadlessBrowser {
	constructor(origin) {
		this.origin = origin;
		this.cookies = new Map();
	}

	async request(url, init = {}) {
		const headers = new Headers(init.headers);
		if (this.cookies.size > 0) {
			headers.set("cookie", [...this.cookies].map(([k, v]) => `${k}=${v}`).join("; "));
		}
		const res = await fetch(url, { ...init, headers, redirect: "manual" });
		for (const c of res.headers.getSetCookie()) {
			const [pair, ...attrs] = c.split(";");
			const i = pair.indexOf("=");
			const name = pair.slice(0, i).trim();
			const value = pair.slice(i + 1).trim();
			const expired = attrs.some((a) => /^\s*max-age=(0|-)/i.test(a)) || value === "";
			if (expired) this.cookies.delete(name);
			else this.cookies.set(name, value);
		}
		return res;
	}

	// navigate follows same-origin redirects; it returns the final page, or
	// the redirect that leaves the authorization server.
	async navigate(url, init) {
		let res = await this.request(url, init);
		for (let hops = 0; hops < 10; hops++) {
			if (res.status < 300 || res.status >= 400) {
				return { url: String(url), status: res.status, body: await res.text() };
			}
			const next = new URL(res.headers.get("location"), url);
			await res.body?.cancel();
			if (next.origin !== this.origin) {
				return { url: String(url), status: res.status, redirect: next };
			}
			url = next;
			res = await this.request(url);
		}
		throw new Error("too many redirects at " + url);
	}

	async submit(page, action, fields) {
		const form = formOf(page.body, action);
		if (!form) throw new Error(`no form posting to ${action} at ${page.url}`);
		const body = new URLSearchParams({ ...form, ...fields });
		return this.navigate(new URL(action, this.origin), {
			method: "POST",
			headers: { "content-type": "application/x-www-form-urlencoded" },
			body,
		});
	}
}

const unescape = (s) =>
	s.replace(/&#(\d+);/g, (_, n) => String.fromCharCode(+n))
		.replace(/&#x([0-9a-f]+);/gi, (_, n) => String.fromCharCode(parseInt(n, 16)))
		.replace(/&quot;/g, '"').replace(/&#39;/g, "'").replace(/&lt;/g, "<").replace(/&gt;/g, ">").replace(/&amp;/g, "&");

// formOf returns the hidden fields of the form posting to action.
function formOf(html, action) {
	const start = html.indexOf(`action="${action}"`);
	if (start < 0) return null;
	const end = html.indexOf("</form>", start);
	const form = html.slice(start, end < 0 ? undefined : end);
	const fields = {};
	for (const m of form.matchAll(/<input\b[^>]*>/g)) {
		const attr = (n) => m[0].match(new RegExp(`\\b${n}="([^"]*)"`))?.[1];
		if (attr("type") === "hidden" && attr("name")) fields[unescape(attr("name"))] = unescape(attr("value") ?? "");
	}
	return fields;
}

// An in-memory OAuthClientProvider whose redirect handler signs in and
// approves the consent headlessly, keeping the authorization code.
class HeadlessProvider {
	constructor() {
		this.client = undefined;
		this.saved = undefined;
		this.verifier = undefined;
		this.code = undefined;
	}
	get redirectUrl() {
		return REDIRECT_URL;
	}
	get clientMetadata() {
		return {
			client_name: "Picard TypeScript SDK test",
			redirect_uris: [REDIRECT_URL],
			grant_types: ["authorization_code", "refresh_token"],
			response_types: ["code"],
			token_endpoint_auth_method: "none",
			scope: SCOPES,
		};
	}
	state() {
		this.expectedState = crypto.randomUUID();
		return this.expectedState;
	}
	clientInformation() {
		return this.client;
	}
	saveClientInformation(info) {
		this.client = info;
		step("registered", { client_id: info.client_id, token_endpoint_auth_method: info.token_endpoint_auth_method });
	}
	tokens() {
		return this.saved;
	}
	saveTokens(tokens) {
		this.saved = tokens;
		step("tokens", {
			token_type: tokens.token_type,
			scope: tokens.scope,
			expires_in: tokens.expires_in,
			refresh_token: Boolean(tokens.refresh_token),
		});
	}
	saveCodeVerifier(v) {
		this.verifier = v;
	}
	codeVerifier() {
		if (!this.verifier) throw new Error("no code verifier saved");
		return this.verifier;
	}
	async redirectToAuthorization(authURL) {
		const q = authURL.searchParams;
		step("authorize", {
			endpoint: authURL.origin + authURL.pathname,
			code_challenge_method: q.get("code_challenge_method"),
			resource: q.get("resource"),
			scope: q.get("scope"),
		});
		const browser = new HeadlessBrowser(authURL.origin);
		let page = await browser.navigate(authURL);
		if (!page.redirect && formOf(page.body, "/login")) {
			page = await browser.submit(page, "/login", { email, password });
			step("login", { status: page.status, redirected: Boolean(page.redirect) });
		}
		if (!page.redirect && /name="decision"/.test(page.body)) {
			page = await browser.submit(page, "/authorize", { decision: "approve" });
			step("consent", { status: page.status, redirected: Boolean(page.redirect) });
		}
		if (!page.redirect) {
			throw new Error(`authorization ended at ${page.url} with ${page.status}: ${page.body.slice(0, 300)}`);
		}
		const back = page.redirect;
		if (back.origin + back.pathname !== REDIRECT_URL) throw new Error("redirected to an unexpected URL: " + back);
		if (back.searchParams.get("error")) throw new Error("authorization error: " + back.searchParams);
		if (back.searchParams.get("state") !== this.expectedState) throw new Error("state mismatch in " + back);
		this.code = back.searchParams.get("code");
		this.iss = back.searchParams.get("iss");
		if (!this.code) throw new Error("no code in " + back);
		step("callback", { code: true, iss: this.iss });
	}
}

async function connect(provider) {
	const client = new Client({ name: "picard-ts-sdk-test", version: "1.0.0" });
	await client.connect(new StreamableHTTPClientTransport(new URL(mcpURL), { authProvider: provider }));
	return client;
}

const structured = (res, tool) => {
	if (res.isError) throw new Error(`${tool} failed: ${JSON.stringify(res.content)}`);
	if (!res.structuredContent) throw new Error(`${tool}: no structuredContent`);
	return res.structuredContent;
};

try {
	const provider = new HeadlessProvider();

	// First attempt: 401 → discovery, registration, authorization (the
	// provider's redirect handler), then UnauthorizedError until finishAuth.
	const first = new StreamableHTTPClientTransport(new URL(mcpURL), { authProvider: provider });
	const probe = new Client({ name: "picard-ts-sdk-test", version: "1.0.0" });
	try {
		await probe.connect(first);
		throw new Error("connected without authorization");
	} catch (e) {
		if (!(e instanceof UnauthorizedError)) throw e;
	}
	if (!provider.code) throw new Error("the SDK did not start the authorization flow");
	await first.finishAuth(provider.code);
	const issued = provider.tokens();
	if (!issued?.access_token) throw new Error("no access token after finishAuth");

	let client = await connect(provider);
	const { tools } = await client.listTools();
	const names = tools.map((t) => t.name).sort();
	step("tools/list", { count: names.length, names });

	const text = `TypeScript SDK memory ${crypto.randomUUID()}`;
	const memory = structured(
		await client.callTool({ name: "submit_memory", arguments: { text, tags: ["ts-sdk"] } }),
		"submit_memory",
	);
	if (memory.text !== text || !memory.id) throw new Error("submit_memory returned " + JSON.stringify(memory));
	step("submit_memory", { id: memory.id, permission: memory.permission });

	const found = structured(
		await client.callTool({ name: "query_memory", arguments: { query: text, limit: 5 } }),
		"query_memory",
	);
	const hit = found.results?.find((r) => r.memory?.id === memory.id);
	if (!hit) throw new Error("query_memory did not return the submitted memory: " + JSON.stringify(found));
	step("query_memory", { results: found.results.length, found: true, score: hit.score });
	await client.close();

	// The SDK's auth() with a stored refresh token refreshes (rotation): a new
	// access and refresh token, and the new access token works.
	const result = await auth(provider, { serverUrl: mcpURL });
	const refreshed = provider.tokens();
	if (result !== "AUTHORIZED" || refreshed.access_token === issued.access_token) {
		throw new Error(`refresh did not issue a new access token (${result})`);
	}
	if (refreshed.refresh_token === issued.refresh_token) throw new Error("refresh token was not rotated");
	client = await connect(provider);
	const again = await client.listTools();
	await client.close();
	step("refresh", { rotated: true, tools: again.tools.length });

	console.log(JSON.stringify({ ok: true, client_id: provider.client.client_id, tools: names, memory_id: memory.id, iss: provider.iss }));
} catch (e) {
	console.log(JSON.stringify({ ok: false, error: String(e?.stack || e) }));
	process.exit(1);
}
