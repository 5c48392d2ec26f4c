//! Request paths → a bounded set of route labels, and the kind of API each route serves.
//!
//! The labels are the templates of Open WebUI's own route table ([`super::routes_generated`],
//! written by `cargo xtask routes --version V` from Open WebUI's wheel), plus the pages its
//! SvelteKit front end serves from the `/` mount ([`SPA_PAGES`]). A path matches a template
//! segment by segment: `{id}` matches any one non-empty segment (a FastAPI path parameter,
//! whatever Open WebUI calls it), `*` the rest of the path (a `{name:path}` parameter); literal
//! segments win over parameters, so `/api/v1/chats/pinned` is not `/api/v1/chats/{id}`. Static
//! assets collapse into `/_app/*`, `/static/*`, `/assets/*`, `/pyodide/*`; other paths under a
//! router prefix become `<prefix>/*`; everything else is `other`. Every label is a
//! `&'static str` from these tables, so the label set is bounded whatever clients send.
//!
//! [`api_kind`] is written by hand: which routes call a model, and through which API. Its
//! test checks it against every model-calling route of the generated table, so a new Open
//! WebUI release that adds a door to a model fails the test until the door is classified.

use std::sync::LazyLock;

use super::{
    fast_map::FastMap,
    routes_generated::{ROUTER_PREFIXES, ROUTES},
};

/// One route of Open WebUI's table, as `cargo xtask routes` writes it.
#[derive(Debug, Clone, Copy)]
pub struct GeneratedRoute {
    /// `GET`, `POST`, …, or `WEBSOCKET`.
    pub method: &'static str,
    /// The path as FastAPI declares it, parameters named (`/api/v1/chats/{id}/messages/{message_id}`).
    pub path: &'static str,
    /// The route label: parameters as `{id}`, a `{name:path}` parameter as `*`.
    pub template: &'static str,
    /// `<module>.<function>` of the handler, relative to `open_webui`.
    pub handler: &'static str,
}

/// Prefixes whose whole subtree is one label: SvelteKit bundles (`/_app`, `/assets`) and
/// the static mounts of `main.py` (`/static`, `/pyodide`).
const ASSET_GROUPS: [(&str, &str); 4] = [
    ("/_app/", "/_app/*"),
    ("/static/", "/static/*"),
    ("/assets/", "/assets/*"),
    ("/pyodide/", "/pyodide/*"),
];

/// What the `/` mount (SvelteKit's build) serves: pages of the single-page app, root files,
/// and FastAPI's own documentation pages (served when Open WebUI runs with `ENV=dev`).
const SPA_PAGES: &[&str] = &[
    "/",
    "/auth",
    "/error",
    "/home",
    "/notes",
    "/notes/{id}",
    "/playground",
    "/playground/completions",
    "/c/{id}",
    "/s/{id}",
    "/channels/{id}",
    "/admin",
    "/admin/users",
    "/admin/evaluations",
    "/admin/functions",
    "/admin/settings",
    "/admin/settings/{id}",
    "/workspace",
    "/workspace/models",
    "/workspace/knowledge",
    "/workspace/prompts",
    "/workspace/tools",
    "/favicon.png",
    "/favicon.ico",
    "/favicon.svg",
    "/robots.txt",
    "/docs",
    "/openapi.json",
];

/// Broad fallbacks after the router prefixes: a path below one that matches nothing else.
const BROAD_GROUPS: &[(&str, &str)] = &[
    ("/api/v1/", "/api/v1/*"),
    ("/api/", "/api/*"),
    ("/oauth/", "/oauth/*"),
    ("/ws/", "/ws/*"),
];

/// The label of any path that matches nothing above (scanners, typos).
pub const OTHER: &str = "other";

/// Router prefixes as (`<prefix>/`, `<prefix>/*`), longest first so a nested router
/// (`/api/v1/auths/mfa`) wins over its parent, then [`BROAD_GROUPS`].
static PREFIX_GROUPS: LazyLock<Vec<(String, String)>> = LazyLock::new(|| {
    let mut v: Vec<(String, String)> = ROUTER_PREFIXES
        .iter()
        .map(|p| (format!("{p}/"), format!("{p}/*")))
        .collect();
    v.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then_with(|| a.0.cmp(&b.0)));
    v.extend(
        BROAD_GROUPS
            .iter()
            .map(|&(p, l)| (p.to_owned(), l.to_owned())),
    );
    v
});

/// The templates as a segment trie, built once: matching costs one hash lookup per path
/// segment instead of a scan of the table. Its keys are the templates' own segments, fixed at
/// start: a request's path is only looked up, never inserted, so the fast hasher is safe here.
#[derive(Default)]
struct Node {
    literal: FastMap<&'static str, Node>,
    param: Option<Box<Node>>,
    /// A `*` segment: one or more segments (or, at the template's end, any rest).
    rest: Option<Box<Node>>,
    template: Option<&'static str>,
}

static TRIE: LazyLock<Node> = LazyLock::new(|| {
    let mut root = Node::default();
    let templates = ROUTES
        .iter()
        .map(|r| r.template)
        .chain(SPA_PAGES.iter().copied());
    for template in templates {
        let mut node = &mut root;
        for seg in template.split('/') {
            node = match seg {
                "{id}" => node.param.get_or_insert_with(Default::default),
                "*" => node.rest.get_or_insert_with(Default::default),
                _ => node.literal.entry(seg).or_default(),
            };
        }
        node.template = Some(template);
    }
    root
});

/// The first segment of `path` and the segments after it: `None` when it was the last, as
/// `str::split('/')` yields them (an empty `path` is one empty segment).
fn next_segment(path: &str) -> (&str, Option<&str>) {
    match path.bytes().position(|b| b == b'/') {
        Some(i) => (&path[..i], Some(&path[i + 1..])),
        None => (path, None),
    }
}

/// Depth-first: literal, then parameter, then rest (FastAPI matches in declaration order;
/// Open WebUI declares literal routes like `/chats/pinned` before `/chats/{id}`, and its
/// catch-all proxies last). `path` holds the segments not matched yet (`None`: none left).
/// Recursion depth is bounded by the deepest template, whatever the path; a `*` inside a
/// template tries each split of the path once, so the work is bounded by the path's segment
/// count times the template's depth.
fn walk(node: &Node, path: Option<&str>) -> Option<&'static str> {
    let Some(path) = path else {
        return node.template;
    };
    let (seg, mut after) = next_segment(path);
    if let Some(t) = node.literal.get(seg).and_then(|c| walk(c, after)) {
        return Some(t);
    }
    if let Some(p) = &node.param
        && !seg.is_empty()
        && let Some(t) = walk(p, after)
    {
        return Some(t);
    }
    // A `*` takes one or more segments (the whole rest when it ends the template).
    let rest = node.rest.as_deref()?;
    loop {
        if let Some(t) = walk(rest, after) {
            return Some(t);
        }
        after = next_segment(after?).1;
    }
}

/// The route label of a request path (query already removed).
pub fn route(path: &str) -> &'static str {
    for (prefix, label) in ASSET_GROUPS {
        if path.starts_with(prefix) {
            return label;
        }
    }
    if let Some(template) = walk(&TRIE, Some(path)) {
        return template;
    }
    PREFIX_GROUPS
        .iter()
        .find(|(prefix, _)| path.starts_with(prefix.as_str()))
        .map_or(OTHER, |(_, label)| label.as_str())
}

/// Which API a request speaks, by method and route label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ApiKind {
    /// OpenAI Chat Completions (and the legacy Completions through the Ollama router): JSON or
    /// SSE answers with `usage.prompt_tokens`/`completion_tokens`.
    ChatCompletion,
    /// Ollama's native `/api/chat` and `/api/generate` through the Ollama router: NDJSON or
    /// JSON with `prompt_eval_count`/`eval_count`, streaming unless told otherwise.
    OllamaChat,
    /// Anthropic Messages: `usage.input_tokens`/`output_tokens`, streamed as `message_start`
    /// and `message_delta` events.
    Messages,
    /// Anthropic token counting: `{"input_tokens": N}`, an estimate, not a model call's usage.
    CountTokens,
    /// OpenAI Responses: `usage.input_tokens`/`output_tokens`, streamed in `response.completed`.
    Responses,
    /// Embeddings: OpenAI `usage.prompt_tokens`, or Ollama's `prompt_eval_count`. Open
    /// WebUI's OpenAI-compatible `/api/embeddings` (alias `/api/v1/embeddings`) and the Ollama
    /// router's `/v1/embeddings` answer with `usage.prompt_tokens`, Ollama's `/api/embed` with
    /// `prompt_eval_count`; `/ollama/api/embeddings`, Ollama's older API, reports none (so it
    /// counts nothing, but is recognised). Scripts that embed documents in bulk spend tokens
    /// without a single chat completion.
    Embeddings,
    /// Open WebUI's own generation tasks (titles, tags, follow-ups, queries, chat compaction…),
    /// which ask a model on the caller's behalf and answer with the result, not the usage.
    Task,
    /// Speech synthesis and transcription (`/api/v1/audio/*`, `/openai/audio/speech`).
    Audio,
    /// Image generation and editing (`/api/v1/images/*`).
    Image,
    /// The deprecated OpenAI passthrough `/openai/{path:path}` (off unless Open WebUI sets
    /// `ENABLE_OPENAI_API_PASSTHROUGH`): any backend endpoint, so any API.
    Passthrough,
    /// A WebSocket upgrade: socket.io (the web UI's answers), realtime audio, terminals.
    WebSocket,
    /// Static files and the single-page app's pages.
    Static,
    /// Everything else: no model behind it.
    Other,
}

/// Whether attribution reads any field of the body of a `method` request to `path`: model
/// calls that generate and embeddings (model, stream, session and message ids). Every other
/// request body is left undecoded and unscanned.
///
/// Every such API is a `POST` ([`api_kind`]), so no other request's path is looked up.
pub fn reads_request_body(method: &str, path: &str) -> bool {
    if method != "POST" {
        return false;
    }
    api_kind(method, route(path)).metered()
}

impl ApiKind {
    /// A model call that generates an answer with usage: chat completions, Ollama's native
    /// chat, Anthropic Messages and Responses (embeddings are counted apart; count_tokens
    /// answers an estimate and calls no model).
    pub fn generates(self) -> bool {
        matches!(
            self,
            Self::ChatCompletion | Self::OllamaChat | Self::Messages | Self::Responses
        )
    }

    /// A call whose model and tokens attribution counts: one that generates, or embeddings.
    /// Only these requests' bodies are read, and only their exchanges end in a
    /// [`Fact::ModelCall`](super::fact::Fact::ModelCall).
    pub fn metered(self) -> bool {
        self.generates() || self == Self::Embeddings
    }

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ChatCompletion => "chat",
            Self::OllamaChat => "ollama",
            Self::Messages => "messages",
            Self::CountTokens => "count_tokens",
            Self::Responses => "responses",
            Self::Embeddings => "embeddings",
            Self::Task => "task",
            Self::Audio => "audio",
            Self::Image => "image",
            Self::Passthrough => "passthrough",
            Self::WebSocket => "websocket",
            Self::Static => "static",
            Self::Other => "other",
        }
    }

    /// Does a request of this kind make a model generate, embed or count for the caller?
    pub fn calls_model(self) -> bool {
        !matches!(self, Self::WebSocket | Self::Static | Self::Other)
    }
}

/// Templates of the WebSocket routes (their upgrade is a `GET`): socket.io's, realtime audio,
/// terminals.
static WEBSOCKETS: LazyLock<Vec<&'static str>> = LazyLock::new(|| {
    ROUTES
        .iter()
        .filter(|r| r.method == "WEBSOCKET" || r.handler == "socket.main.sio")
        .map(|r| r.template)
        .collect()
});

/// The API a request with this method and route label speaks (see [`ApiKind`]).
pub fn api_kind(method: &str, route: &str) -> ApiKind {
    use ApiKind::*;
    if method == "GET" && route == "/api/v1/audio/realtime" {
        return Audio;
    }
    if method == "GET" && WEBSOCKETS.contains(&route) {
        return WebSocket;
    }
    if method == "GET"
        && (ASSET_GROUPS.iter().any(|&(_, l)| l == route) || SPA_PAGES.contains(&route))
    {
        return Static;
    }
    if method != "POST" {
        return Other;
    }
    match route {
        "/api/chat/completions"
        | "/api/v1/chat/completions"
        | "/openai/chat/completions"
        | "/ollama/v1/chat/completions"
        | "/ollama/v1/chat/completions/{id}"
        | "/ollama/v1/completions"
        | "/ollama/v1/completions/{id}" => ChatCompletion,
        "/ollama/api/chat"
        | "/ollama/api/chat/{id}"
        | "/ollama/api/generate"
        | "/ollama/api/generate/{id}" => OllamaChat,
        "/api/v1/messages"
        | "/api/message"
        | "/ollama/v1/messages"
        | "/ollama/v1/messages/{id}" => Messages,
        "/api/v1/messages/count_tokens" | "/api/message/count_tokens" => CountTokens,
        "/openai/responses" | "/ollama/v1/responses" | "/ollama/v1/responses/{id}" => Responses,
        "/api/embeddings"
        | "/api/v1/embeddings"
        | "/ollama/api/embed"
        | "/ollama/api/embed/{id}"
        | "/ollama/api/embeddings"
        | "/ollama/api/embeddings/{id}"
        | "/ollama/v1/embeddings"
        | "/ollama/v1/embeddings/{id}" => Embeddings,
        "/api/v1/tasks/title/completions"
        | "/api/v1/tasks/follow_up/completions"
        | "/api/v1/tasks/tags/completions"
        | "/api/v1/tasks/queries/completions"
        | "/api/v1/tasks/auto/completions"
        | "/api/v1/tasks/emoji/completions"
        | "/api/v1/tasks/image_prompt/completions"
        | "/api/v1/tasks/moa/completions"
        | "/api/v1/chats/{id}/compact" => Task,
        "/api/v1/audio/speech" | "/api/v1/audio/transcriptions" | "/openai/audio/speech" => Audio,
        "/api/v1/images/generations" | "/api/v1/images/edit" => Image,
        "/openai/*" => Passthrough,
        _ => Other,
    }
}

/// Does a completion on this route stream when its request does not say? Ollama's native API
/// does (its `stream` defaults to true, as does Open WebUI's proxy form for it,
/// `GenerateChatCompletionForm` in backend/open_webui/routers/ollama.py); OpenAI's does not.
pub fn streams_by_default(route: &str) -> bool {
    matches!(
        route,
        "/ollama/api/chat"
            | "/ollama/api/chat/{id}"
            | "/ollama/api/generate"
            | "/ollama/api/generate/{id}"
    )
}

/// The route and API of the last request target looked up, kept so that the next request to
/// the same path costs one comparison instead of a walk of the route table: a script repeats
/// its completions, a browser its polls. One path is kept (at most the HTTP layer's longest
/// path), so the memory is bounded whatever clients send.
#[derive(Debug)]
pub(crate) struct LastRoute {
    method: &'static str,
    path: String,
    found: Option<(&'static str, ApiKind)>,
}

impl Default for LastRoute {
    /// Room for the usual paths from the start, so the kept path rarely grows.
    fn default() -> Self {
        Self {
            method: "",
            path: String::with_capacity(128),
            found: None,
        }
    }
}

impl LastRoute {
    /// [`route`] of `path` and [`api_kind`] of `method` (a method label) with it.
    pub(crate) fn of(&mut self, method: &'static str, path: &str) -> (&'static str, ApiKind) {
        if let Some(found) = self.found
            && std::ptr::eq(self.method, method)
            && self.path == path
        {
            return found;
        }
        let route = route(path);
        let found = (route, api_kind(method, route));
        self.method = method;
        self.path.clear();
        self.path.push_str(path);
        self.found = Some(found);
        found
    }
}

/// Every label [`route`] can return.
#[cfg(test)]
pub(crate) fn all_labels() -> impl Iterator<Item = &'static str> {
    ASSET_GROUPS
        .iter()
        .map(|&(_, l)| l)
        .chain(ROUTES.iter().map(|r| r.template))
        .chain(SPA_PAGES.iter().copied())
        .chain(PREFIX_GROUPS.iter().map(|(_, l)| l.as_str()))
        .chain(std::iter::once(OTHER))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The kept route answers as the lookups would, for the same and for other targets.
    #[test]
    fn last_route_answers_as_the_lookup() {
        let mut last = LastRoute::default();
        for (method, path) in [
            ("POST", "/api/chat/completions"),
            ("POST", "/api/chat/completions"),
            ("GET", "/api/chat/completions"),
            ("GET", "/api/v1/chats/pinned"),
            ("GET", "/api/v1/chats/abc"),
            ("POST", "/api/chat/completions"),
            ("POST", "/api/chat/completion"),
        ] {
            let route = route(path);
            assert_eq!(last.of(method, path), (route, api_kind(method, route)));
        }
    }

    /// `reads_request_body` looks up only `POST` paths: no other method reaches a route whose
    /// body attribution reads.
    #[test]
    fn only_posts_have_their_body_read() {
        let methods = crate::openwebui::labels::METHODS.iter().chain(&["other"]);
        for method in methods {
            for label in all_labels() {
                let api = api_kind(method, label);
                if api.metered() {
                    assert_eq!(*method, "POST", "{label} is {api:?}");
                }
            }
        }
        assert!(reads_request_body("POST", "/api/chat/completions"));
        assert!(reads_request_body("POST", "/ollama/api/embed"));
        assert!(!reads_request_body("GET", "/api/chat/completions"));
        assert!(!reads_request_body("POST", "/api/v1/files/"));
    }

    #[test]
    fn every_fixture_path_gets_its_expected_route_group() {
        let mut checked = 0;
        for name in crate::expected_check::CAPTURES {
            let json = crate::expected_check::expected(name);
            for ex in json["exchanges"].as_array().unwrap() {
                let path = ex["path"].as_str().unwrap();
                assert_eq!(
                    route(path),
                    ex["route_group"].as_str().unwrap(),
                    "{name}: {path}"
                );
                checked += 1;
            }
            for row in json["totals"]["by_method_route_status"].as_array().unwrap() {
                let r = row["route"].as_str().unwrap();
                assert!(all_labels().any(|l| l == r), "{r} is its own label");
            }
        }
        assert_eq!(checked, 11 + 3 + 258 + 3 + 2);
    }

    /// The SDK captures (fixtures/openwebui-sdk/): each request's route label and API kind.
    #[test]
    fn sdk_fixture_paths_get_their_route_and_api_kind() {
        let dir =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/openwebui-sdk");
        let mut checked = 0;
        for name in [
            "sdk_anthropic",
            "sdk_anthropic_passthrough",
            "sdk_responses",
            "sdk_embeddings",
            "sdk_ollama",
            "sdk_aliases",
        ] {
            let text = std::fs::read_to_string(dir.join(format!("{name}.expected.json"))).unwrap();
            let json: serde_json::Value = serde_json::from_str(&text).unwrap();
            for ex in json["exchanges"].as_array().unwrap() {
                let (method, path) = (ex["method"].as_str().unwrap(), ex["path"].as_str().unwrap());
                assert_eq!(route(path), ex["route"].as_str().unwrap(), "{name}: {path}");
                assert_eq!(
                    api_kind(method, route(path)).as_str(),
                    ex["api_kind"].as_str().unwrap(),
                    "{name}: {path}"
                );
                checked += 1;
            }
        }
        assert_eq!(checked, 6 + 6 + 4 + 2 + 10 + 6);
    }

    #[test]
    fn ids_are_parameters_and_literals_win() {
        assert_eq!(
            route("/api/v1/chats/35ae9654-336e-4ee2-9dd7-f234e6760bae"),
            "/api/v1/chats/{id}"
        );
        assert_eq!(route("/api/v1/chats/not-a-uuid"), "/api/v1/chats/{id}");
        assert_eq!(route("/api/v1/chats/pinned"), "/api/v1/chats/pinned");
        assert_eq!(
            route("/api/v1/users/user/settings"),
            "/api/v1/users/user/settings"
        );
        assert_eq!(
            route("/api/v1/users/123/profile/image"),
            "/api/v1/users/{id}/profile/image"
        );
        assert_eq!(
            route("/ollama/v1/chat/completions/0"),
            "/ollama/v1/chat/completions/{id}"
        );
        assert_eq!(route("/c/35ae9654-336e-4ee2-9dd7-f234e6760bae"), "/c/{id}");
    }

    #[test]
    fn unknown_paths_are_bounded() {
        assert_eq!(route("/api/v1/chats/a/b/c/d"), "/api/v1/chats/*");
        assert_eq!(route("/api/v1/nonexistent"), "/api/v1/*");
        assert_eq!(route("/api/whatever"), "/api/*");
        assert_eq!(route("/wp-login.php"), OTHER);
        assert_eq!(route(""), OTHER);
        assert_eq!(route("/api/v1/chats//x"), "/api/v1/chats/*");
        assert_eq!(route("/_app/version.json"), "/_app/*");
        // Pathological depth: bounded work, no deep recursion.
        assert_eq!(route(&"/api/v1/chats".repeat(10_000)), "/api/v1/chats/*");
        assert_eq!(route(&"/".repeat(100_000)), OTHER);
        let labels: std::collections::HashSet<_> = all_labels().collect();
        // The table's templates, the pages, the asset and prefix groups, `other`: a fixed set.
        assert!(labels.len() < 700, "{}", labels.len());
    }

    #[test]
    fn path_parameters_take_the_rest() {
        assert_eq!(route("/openai/models/x/y"), "/openai/*");
        assert_eq!(route("/openai/"), "/openai/*");
        assert_eq!(route("/cache/image/generations/a.png"), "/cache/*");
        assert_eq!(route("/api/tasks/chat/abc/stop"), "/api/tasks/chat/*/stop");
        assert_eq!(
            route("/api/tasks/chat/a/b/c/stop"),
            "/api/tasks/chat/*/stop"
        );
        assert_eq!(route("/api/tasks/chat/a/b/c"), "/api/tasks/chat/*");
        assert_eq!(
            route("/api/v1/analytics/models/org/model:7b/overview"),
            "/api/v1/analytics/models/*/overview"
        );
        // A rest inside a template costs one walk per split, not more.
        let deep = format!("/api/tasks/chat{}", "/x".repeat(50_000));
        assert_eq!(route(&deep), "/api/tasks/chat/*");
        assert_eq!(route(&format!("{deep}/nope/stop/x")), "/api/tasks/chat/*");
        // Router prefixes from the table, nested ones first.
        assert_eq!(route("/api/v1/auths/mfa/nope/x"), "/api/v1/auths/mfa/*");
        assert_eq!(route("/api/v1/auths/nope/x"), "/api/v1/auths/*");
    }

    /// Handlers that make a model generate, embed or count for the caller, judged by the
    /// handler's name in Open WebUI's table. A route it selects that [`api_kind`] leaves as a
    /// non-model kind fails [`every_model_calling_route_is_classified`]: classify it, or list it
    /// in `NOT_MODEL_CALLS` with the reason.
    fn handler_calls_model(handler: &str) -> bool {
        let function = handler.rsplit('.').next().unwrap();
        function.starts_with("generate_")
            || function.starts_with("embed")
            || function.starts_with("compact_")
            || (function.starts_with("count_") && function.ends_with("_tokens"))
            || [
                "chat_completion",
                "responses",
                "speech",
                "transcription",
                "realtime_call",
                "edit_images",
                "proxy",
            ]
            .contains(&function)
    }

    /// Handlers [`handler_calls_model`] selects that call no model, with the reason.
    const NOT_MODEL_CALLS: &[(&str, &str)] = &[(
        "routers.auths.generate_api_key",
        "creates the caller's sk- key",
    )];

    #[test]
    fn every_model_calling_route_is_classified() {
        let mut model_routes = Vec::new();
        for r in ROUTES {
            let method = if r.method == "WEBSOCKET" {
                "GET"
            } else {
                r.method
            };
            let kind = api_kind(method, r.template);
            let selected = handler_calls_model(r.handler)
                && !NOT_MODEL_CALLS.iter().any(|&(h, _)| h == r.handler)
                && matches!(r.method, "POST" | "WEBSOCKET");
            if selected {
                assert!(kind.calls_model(), "{r:?} calls a model but is {kind:?}");
                model_routes.push(format!("{} {} {}", r.method, r.path, kind.as_str()));
            } else {
                assert!(
                    !kind.calls_model(),
                    "{r:?} is {kind:?}: which model does it call?"
                );
            }
        }
        // The doors of Open WebUI 0.12.4, by kind (the report of the generator run).
        let count = |k: &str| {
            model_routes
                .iter()
                .filter(|r| r.ends_with(&format!(" {k}")))
                .count()
        };
        assert_eq!(
            [
                count("chat"),
                count("ollama"),
                count("messages"),
                count("count_tokens"),
                count("responses"),
                count("embeddings"),
                count("task"),
                count("audio"),
                count("image"),
                count("passthrough"),
            ],
            [7, 4, 4, 2, 3, 8, 9, 4, 2, 1],
            "{model_routes:#?}"
        );
        assert_eq!(super::super::routes_generated::VERSION, "0.12.4");
    }

    #[test]
    fn mounts_and_prefixes_have_groups() {
        for m in super::super::routes_generated::MOUNTS {
            match *m {
                "/" | "/ws" => {}
                m => assert!(
                    ASSET_GROUPS.iter().any(|(p, _)| *p == format!("{m}/")),
                    "mount {m} has no asset group"
                ),
            }
        }
        for p in ROUTER_PREFIXES {
            let group = format!("{p}/*");
            assert!(PREFIX_GROUPS.iter().any(|(_, l)| *l == group), "{p}");
        }
        assert_eq!(route("/api/v1/chats/no/such/route"), "/api/v1/chats/*");
        assert_eq!(route("/ws/socket.io/"), "/ws/socket.io/");
        assert_eq!(api_kind("GET", "/ws/socket.io/"), ApiKind::WebSocket);
        assert_eq!(api_kind("GET", "/_app/*"), ApiKind::Static);
        assert_eq!(api_kind("GET", "/c/{id}"), ApiKind::Static);
        assert_eq!(
            api_kind("GET", route("/api/v1/terminals/t1/api/terminals/s1")),
            ApiKind::WebSocket
        );
    }

    #[test]
    fn chat_completion_endpoints() {
        let is_embedding = |route| api_kind("POST", route) == ApiKind::Embeddings;
        assert!(api_kind("POST", route("/api/chat/completions")).generates());
        assert!(api_kind("POST", route("/api/v1/chat/completions")).generates());
        assert!(api_kind("POST", route("/openai/chat/completions")).generates());
        assert!(api_kind("POST", route("/ollama/api/generate")).generates());
        assert!(!api_kind("GET", route("/api/chat/completions")).generates());
        assert!(!api_kind("POST", route("/api/chat/completed")).generates());
        assert!(is_embedding(route("/api/embeddings")));
        assert!(is_embedding(route("/ollama/api/embed")));
        assert_eq!(api_kind("GET", route("/api/embeddings")), ApiKind::Other);
        assert!(!api_kind("POST", route("/api/embeddings")).generates());
        assert!(is_embedding(route("/api/v1/embeddings")));
        assert!(is_embedding(route("/ollama/v1/embeddings")));
        assert!(api_kind("POST", route("/api/v1/messages")).generates());
        assert!(api_kind("POST", route("/openai/responses")).generates());
        assert!(!api_kind("POST", route("/api/v1/messages/count_tokens")).generates());
        for (path, kind) in [
            ("/api/v1/messages", ApiKind::Messages),
            ("/api/message", ApiKind::Messages),
            ("/ollama/v1/messages", ApiKind::Messages),
            ("/api/v1/messages/count_tokens", ApiKind::CountTokens),
            ("/api/message/count_tokens", ApiKind::CountTokens),
            ("/openai/responses", ApiKind::Responses),
            ("/ollama/v1/responses", ApiKind::Responses),
            ("/api/chat/completions", ApiKind::ChatCompletion),
            ("/ollama/api/generate", ApiKind::OllamaChat),
            ("/api/v1/tasks/title/completions", ApiKind::Task),
            ("/api/v1/chats/0b1/compact", ApiKind::Task),
            ("/api/v1/chats/0b1/messages/m1", ApiKind::Other),
            ("/openai/embeddings", ApiKind::Passthrough),
        ] {
            assert_eq!(api_kind("POST", route(path)), kind, "{path}");
        }
        assert_eq!(api_kind("GET", route("/api/v1/messages")), ApiKind::Other);
        assert!(streams_by_default(route("/ollama/api/chat")));
        assert!(streams_by_default(route("/ollama/api/generate/1")));
        assert!(!streams_by_default(route("/ollama/v1/chat/completions")));
        assert!(!streams_by_default(route("/api/chat/completions")));
    }
}
