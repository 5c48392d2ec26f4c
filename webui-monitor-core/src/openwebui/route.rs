//! Request paths → a bounded set of route labels, modelled on Open WebUI 0.12.4's route table.
//!
//! A path matches a known template segment by segment (`{id}` matches any one non-empty
//! segment, like a FastAPI path parameter; literal segments win over parameters, so
//! `/api/v1/chats/pinned` is not `/api/v1/chats/{id}`). Static assets collapse into
//! `/_app/*`, `/static/*`, `/assets/*`; other paths under a known router prefix become
//! `<prefix>/*`; everything else is `other`. Every label is a `&'static str` from this file,
//! so the label set is bounded whatever clients send.

use std::{collections::HashMap, sync::LazyLock};

/// Prefixes whose whole subtree is one label (SvelteKit bundles, static files).
const ASSET_GROUPS: [(&str, &str); 3] = [
    ("/_app/", "/_app/*"),
    ("/static/", "/static/*"),
    ("/assets/", "/assets/*"),
];

/// Known endpoint templates (FastAPI routers under their `main.py` prefixes, `main.py`'s own
/// routes, the socket.io mount and the SvelteKit pages the SPA handler serves).
const TEMPLATES: &[&str] = &[
    // main.py
    "/api/config",
    "/api/version",
    "/api/version/updates",
    "/api/changelog",
    "/api/models",
    "/api/models/base",
    "/api/chat/completions",
    "/api/v1/chat/completions",
    "/api/chat/completed",
    "/api/chat/actions/{id}",
    "/api/embeddings",
    "/api/tasks",
    "/api/tasks/stop/{id}",
    "/api/tasks/chat/{id}",
    "/api/usage",
    "/api/webhook",
    "/api/v1/usage",
    "/oauth/{id}/login",
    "/oauth/{id}/callback",
    "/health",
    "/health/db",
    "/ready",
    "/manifest.json",
    "/opensearch.xml",
    "/ws/socket.io/",
    // SPA pages and root files
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
    // OpenAI / Ollama proxies ({id} = url_idx)
    "/openai/chat/completions",
    "/openai/{id}/chat/completions",
    "/openai/models",
    "/openai/models/{id}",
    "/openai/config",
    "/openai/config/update",
    "/openai/verify",
    "/ollama/api/chat",
    "/ollama/api/chat/{id}",
    "/ollama/api/generate",
    "/ollama/api/generate/{id}",
    "/ollama/api/tags",
    "/ollama/api/tags/{id}",
    "/ollama/api/version",
    "/ollama/api/ps",
    "/ollama/api/show",
    "/ollama/api/embed",
    "/ollama/api/embeddings",
    "/ollama/v1/chat/completions",
    "/ollama/v1/completions",
    "/ollama/v1/models",
    "/ollama/config",
    "/ollama/config/update",
    // auths
    "/api/v1/auths/",
    "/api/v1/auths/signin",
    "/api/v1/auths/signup",
    "/api/v1/auths/signout",
    "/api/v1/auths/ldap",
    "/api/v1/auths/add",
    "/api/v1/auths/update/profile",
    "/api/v1/auths/update/password",
    "/api/v1/auths/update/timezone",
    "/api/v1/auths/admin/details",
    "/api/v1/auths/admin/config",
    "/api/v1/auths/admin/config/ldap",
    "/api/v1/auths/admin/config/ldap/server",
    "/api/v1/auths/api_key",
    // users
    "/api/v1/users/",
    "/api/v1/users/all",
    "/api/v1/users/search",
    "/api/v1/users/groups",
    "/api/v1/users/permissions",
    "/api/v1/users/default/permissions",
    "/api/v1/users/user/settings",
    "/api/v1/users/user/settings/update",
    "/api/v1/users/user/status",
    "/api/v1/users/user/status/update",
    "/api/v1/users/user/info",
    "/api/v1/users/user/info/update",
    "/api/v1/users/{id}",
    "/api/v1/users/{id}/update",
    "/api/v1/users/{id}/delete",
    "/api/v1/users/{id}/info",
    "/api/v1/users/{id}/oauth/sessions",
    "/api/v1/users/{id}/profile/image",
    "/api/v1/users/{id}/active",
    "/api/v1/users/{id}/groups",
    // chats
    "/api/v1/chats/",
    "/api/v1/chats/list",
    "/api/v1/chats/new",
    "/api/v1/chats/all",
    "/api/v1/chats/all/db",
    "/api/v1/chats/all/archived",
    "/api/v1/chats/all/tags",
    "/api/v1/chats/archived",
    "/api/v1/chats/archive/all",
    "/api/v1/chats/pinned",
    "/api/v1/chats/search",
    "/api/v1/chats/shared",
    "/api/v1/chats/tags",
    "/api/v1/chats/import",
    "/api/v1/chats/stats/usage",
    "/api/v1/chats/folder/{id}",
    "/api/v1/chats/folder/{id}/list",
    "/api/v1/chats/list/user/{id}",
    "/api/v1/chats/share/{id}",
    "/api/v1/chats/{id}",
    "/api/v1/chats/{id}/pin",
    "/api/v1/chats/{id}/pinned",
    "/api/v1/chats/{id}/clone",
    "/api/v1/chats/{id}/clone/shared",
    "/api/v1/chats/{id}/archive",
    "/api/v1/chats/{id}/share",
    "/api/v1/chats/{id}/folder",
    "/api/v1/chats/{id}/tags",
    "/api/v1/chats/{id}/tags/all",
    "/api/v1/chats/{id}/messages/{id}",
    "/api/v1/chats/{id}/messages/{id}/event",
    // models
    "/api/v1/models/",
    "/api/v1/models/list",
    "/api/v1/models/base",
    "/api/v1/models/create",
    "/api/v1/models/export",
    "/api/v1/models/import",
    "/api/v1/models/sync",
    "/api/v1/models/tags",
    "/api/v1/models/delete/all",
    "/api/v1/models/model",
    "/api/v1/models/model/profile/image",
    "/api/v1/models/model/toggle",
    "/api/v1/models/model/update",
    "/api/v1/models/model/delete",
    // folders, configs, notes, memories, groups, channels
    "/api/v1/folders/",
    "/api/v1/folders/shared",
    "/api/v1/folders/{id}",
    "/api/v1/folders/{id}/update",
    "/api/v1/folders/{id}/update/parent",
    "/api/v1/folders/{id}/update/expanded",
    "/api/v1/configs/banners",
    "/api/v1/configs/export",
    "/api/v1/configs/import",
    "/api/v1/configs/models",
    "/api/v1/configs/suggestions",
    "/api/v1/configs/connections",
    "/api/v1/configs/tool_servers",
    "/api/v1/configs/code_execution",
    "/api/v1/notes/",
    "/api/v1/notes/list",
    "/api/v1/notes/pinned",
    "/api/v1/notes/create",
    "/api/v1/notes/{id}",
    "/api/v1/notes/{id}/update",
    "/api/v1/notes/{id}/delete",
    "/api/v1/memories/",
    "/api/v1/memories/add",
    "/api/v1/memories/query",
    "/api/v1/memories/reset",
    "/api/v1/memories/delete/user",
    "/api/v1/memories/{id}",
    "/api/v1/memories/{id}/update",
    "/api/v1/groups/",
    "/api/v1/groups/create",
    "/api/v1/groups/id/{id}",
    "/api/v1/groups/id/{id}/update",
    "/api/v1/groups/id/{id}/delete",
    "/api/v1/channels/",
    "/api/v1/channels/create",
    "/api/v1/channels/{id}",
    "/api/v1/channels/{id}/messages",
    "/api/v1/channels/{id}/messages/post",
    // workspace objects
    "/api/v1/functions/",
    "/api/v1/functions/list",
    "/api/v1/functions/create",
    "/api/v1/functions/export",
    "/api/v1/functions/id/{id}",
    "/api/v1/functions/id/{id}/update",
    "/api/v1/functions/id/{id}/delete",
    "/api/v1/functions/id/{id}/toggle",
    "/api/v1/functions/id/{id}/valves",
    "/api/v1/tools/",
    "/api/v1/tools/list",
    "/api/v1/tools/create",
    "/api/v1/tools/export",
    "/api/v1/tools/id/{id}",
    "/api/v1/tools/id/{id}/update",
    "/api/v1/tools/id/{id}/delete",
    "/api/v1/tools/id/{id}/valves",
    "/api/v1/prompts/",
    "/api/v1/prompts/list",
    "/api/v1/prompts/create",
    "/api/v1/prompts/command/{id}",
    "/api/v1/prompts/command/{id}/update",
    "/api/v1/prompts/command/{id}/delete",
    "/api/v1/skills/",
    "/api/v1/skills/list",
    "/api/v1/skills/create",
    "/api/v1/skills/{id}",
    "/api/v1/terminals/",
    "/api/v1/knowledge/",
    "/api/v1/knowledge/list",
    "/api/v1/knowledge/create",
    "/api/v1/knowledge/{id}",
    "/api/v1/knowledge/{id}/update",
    "/api/v1/knowledge/{id}/delete",
    "/api/v1/knowledge/{id}/file/add",
    "/api/v1/knowledge/{id}/file/remove",
    "/api/v1/files/",
    "/api/v1/files/search",
    "/api/v1/files/all",
    "/api/v1/files/{id}",
    "/api/v1/files/{id}/content",
    "/api/v1/files/{id}/content/html",
    "/api/v1/files/{id}/data/content",
    "/api/v1/files/{id}/data/content/update",
    "/api/v1/files/{id}/process/status",
    // retrieval, audio, images, tasks, utils, evaluations, pipelines
    "/api/v1/retrieval/",
    "/api/v1/retrieval/config",
    "/api/v1/retrieval/config/update",
    "/api/v1/retrieval/embedding",
    "/api/v1/retrieval/process/file",
    "/api/v1/retrieval/process/text",
    "/api/v1/retrieval/process/web",
    "/api/v1/retrieval/process/web/search",
    "/api/v1/retrieval/query/doc",
    "/api/v1/retrieval/query/collection",
    "/api/v1/audio/config",
    "/api/v1/audio/config/update",
    "/api/v1/audio/speech",
    "/api/v1/audio/transcriptions",
    "/api/v1/audio/models",
    "/api/v1/audio/voices",
    "/api/v1/images/config",
    "/api/v1/images/config/update",
    "/api/v1/images/models",
    "/api/v1/images/generations",
    "/api/v1/tasks/config",
    "/api/v1/tasks/config/update",
    "/api/v1/tasks/title/completions",
    "/api/v1/tasks/follow_up/completions",
    "/api/v1/tasks/tags/completions",
    "/api/v1/tasks/queries/completions",
    "/api/v1/tasks/auto/completions",
    "/api/v1/tasks/emoji/completions",
    "/api/v1/tasks/image_prompt/completions",
    "/api/v1/tasks/moa/completions",
    "/api/v1/utils/gravatar",
    "/api/v1/utils/code/format",
    "/api/v1/utils/code/execute",
    "/api/v1/utils/markdown",
    "/api/v1/utils/pdf",
    "/api/v1/utils/db/download",
    "/api/v1/evaluations/config",
    "/api/v1/evaluations/feedbacks",
    "/api/v1/evaluations/feedbacks/all",
    "/api/v1/evaluations/feedback",
    "/api/v1/evaluations/feedback/{id}",
    "/api/v1/pipelines/",
    "/api/v1/pipelines/list",
];

/// Router prefixes: a path below one that matches no template becomes `<prefix>/*`.
const PREFIX_GROUPS: &[(&str, &str)] = &[
    ("/api/v1/auths/", "/api/v1/auths/*"),
    ("/api/v1/users/", "/api/v1/users/*"),
    ("/api/v1/chats/", "/api/v1/chats/*"),
    ("/api/v1/models/", "/api/v1/models/*"),
    ("/api/v1/folders/", "/api/v1/folders/*"),
    ("/api/v1/configs/", "/api/v1/configs/*"),
    ("/api/v1/notes/", "/api/v1/notes/*"),
    ("/api/v1/memories/", "/api/v1/memories/*"),
    ("/api/v1/groups/", "/api/v1/groups/*"),
    ("/api/v1/channels/", "/api/v1/channels/*"),
    ("/api/v1/functions/", "/api/v1/functions/*"),
    ("/api/v1/tools/", "/api/v1/tools/*"),
    ("/api/v1/prompts/", "/api/v1/prompts/*"),
    ("/api/v1/skills/", "/api/v1/skills/*"),
    ("/api/v1/terminals/", "/api/v1/terminals/*"),
    ("/api/v1/knowledge/", "/api/v1/knowledge/*"),
    ("/api/v1/files/", "/api/v1/files/*"),
    ("/api/v1/retrieval/", "/api/v1/retrieval/*"),
    ("/api/v1/audio/", "/api/v1/audio/*"),
    ("/api/v1/images/", "/api/v1/images/*"),
    ("/api/v1/tasks/", "/api/v1/tasks/*"),
    ("/api/v1/utils/", "/api/v1/utils/*"),
    ("/api/v1/evaluations/", "/api/v1/evaluations/*"),
    ("/api/v1/pipelines/", "/api/v1/pipelines/*"),
    ("/api/v1/scim/", "/api/v1/scim/*"),
    ("/api/v1/analytics/", "/api/v1/analytics/*"),
    ("/api/v1/", "/api/v1/*"),
    ("/api/", "/api/*"),
    ("/openai/", "/openai/*"),
    ("/ollama/", "/ollama/*"),
    ("/oauth/", "/oauth/*"),
    ("/ws/", "/ws/*"),
    ("/cache/", "/cache/*"),
];

/// The label of any path that matches nothing above (SPA fallbacks, scanners, typos).
pub const OTHER: &str = "other";

/// The templates as a segment trie, built once: matching costs one hash lookup per path
/// segment instead of a scan of the table.
#[derive(Default)]
struct Node {
    literal: HashMap<&'static str, Node>,
    param: Option<Box<Node>>,
    template: Option<&'static str>,
}

static TRIE: LazyLock<Node> = LazyLock::new(|| {
    let mut root = Node::default();
    for &template in TEMPLATES {
        let mut node = &mut root;
        for seg in template.split('/') {
            node = if seg == "{id}" {
                node.param.get_or_insert_with(Default::default)
            } else {
                node.literal.entry(seg).or_default()
            };
        }
        node.template = Some(template);
    }
    root
});

/// Depth-first, literal before parameter (FastAPI matches in declaration order; Open WebUI
/// declares literal routes like `/chats/pinned` before `/chats/{id}`). Recursion depth is
/// bounded by the deepest template, whatever the path.
fn walk(node: &Node, mut segments: std::str::Split<'_, char>) -> Option<&'static str> {
    let Some(seg) = segments.next() else {
        return node.template;
    };
    if let Some(t) = node
        .literal
        .get(seg)
        .and_then(|c| walk(c, segments.clone()))
    {
        return Some(t);
    }
    match &node.param {
        Some(p) if !seg.is_empty() => walk(p, segments),
        _ => None,
    }
}

/// The route label of a request path (query already removed).
pub fn route(path: &str) -> &'static str {
    for (prefix, label) in ASSET_GROUPS {
        if path.starts_with(prefix) {
            return label;
        }
    }
    if let Some(template) = walk(&TRIE, path.split('/')) {
        return template;
    }
    PREFIX_GROUPS
        .iter()
        .find(|(prefix, _)| path.starts_with(prefix))
        .map_or(OTHER, |&(_, label)| label)
}

/// Is this the chat-completion endpoint family whose requests carry a model and whose answers
/// carry usage (`/api/chat/completions` and its OpenAI-compatible and Ollama-proxy siblings)?
pub fn is_chat_completion(method: &str, route: &str) -> bool {
    method == "POST"
        && matches!(
            route,
            "/api/chat/completions"
                | "/api/v1/chat/completions"
                | "/openai/chat/completions"
                | "/openai/{id}/chat/completions"
                | "/ollama/api/chat"
                | "/ollama/api/chat/{id}"
                | "/ollama/api/generate"
                | "/ollama/api/generate/{id}"
                | "/ollama/v1/chat/completions"
                | "/ollama/v1/completions"
        )
}

/// Is this an embedding request whose answer counts the tokens it embedded? Open WebUI's
/// OpenAI-compatible `/api/embeddings` answers with `usage.prompt_tokens`, Ollama's `/api/embed`
/// through the proxy with `prompt_eval_count`; `/ollama/api/embeddings`, Ollama's older API,
/// reports none (so it counts nothing, but is recognised). Scripts that embed documents in
/// bulk spend tokens without a single chat completion.
pub fn is_embedding(method: &str, route: &str) -> bool {
    method == "POST"
        && matches!(
            route,
            "/api/embeddings" | "/ollama/api/embed" | "/ollama/api/embeddings"
        )
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

/// Every label [`route`] can return.
#[cfg(test)]
pub(crate) fn all_labels() -> impl Iterator<Item = &'static str> {
    ASSET_GROUPS
        .iter()
        .map(|&(_, l)| l)
        .chain(TEMPLATES.iter().copied())
        .chain(PREFIX_GROUPS.iter().map(|&(_, l)| l))
        .chain(std::iter::once(OTHER))
}

#[cfg(test)]
mod tests {
    use super::*;

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
            route("/openai/0/chat/completions"),
            "/openai/{id}/chat/completions"
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
        assert!(labels.len() < 400);
    }

    #[test]
    fn chat_completion_endpoints() {
        assert!(is_chat_completion("POST", route("/api/chat/completions")));
        assert!(is_chat_completion(
            "POST",
            route("/api/v1/chat/completions")
        ));
        assert!(is_chat_completion(
            "POST",
            route("/openai/chat/completions")
        ));
        assert!(is_chat_completion("POST", route("/ollama/api/generate")));
        assert!(!is_chat_completion("GET", route("/api/chat/completions")));
        assert!(!is_chat_completion("POST", route("/api/chat/completed")));
        assert!(is_embedding("POST", route("/api/embeddings")));
        assert!(is_embedding("POST", route("/ollama/api/embed")));
        assert!(!is_embedding("GET", route("/api/embeddings")));
        assert!(!is_chat_completion("POST", route("/api/embeddings")));
        assert!(streams_by_default(route("/ollama/api/chat")));
        assert!(streams_by_default(route("/ollama/api/generate/1")));
        assert!(!streams_by_default(route("/ollama/v1/chat/completions")));
        assert!(!streams_by_default(route("/api/chat/completions")));
    }
}
