-- `cargo xtask bench-load`, mix: each connection cycles through a non-streamed completion
-- (script, JWT bearer), a streamed completion (SSE with usage) and a 16 KiB JavaScript bundle
-- fetched as a browser does (token cookie, Sec-Fetch-* headers). @JWT@ is filled in by the
-- benchmark.
local requests = {}
local next_request = 0

init = function(args)
    local completion = '{"model":"mock-gpt","messages":[{"role":"user","content":"Script JWT non-streaming question"}]}'
    local stream = '{"model":"mock-gpt","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"Script JWT streaming question"}]}'
    local script = {
        ["User-Agent"] = "python-requests/2.32.3",
        ["Accept"] = "*/*",
        ["Authorization"] = "Bearer @JWT@",
        ["Content-Type"] = "application/json",
    }
    local streamed = {}
    for name, value in pairs(script) do streamed[name] = value end
    streamed["X-Bench-Stream"] = "1"
    local browser = {
        ["User-Agent"] = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
        ["Accept"] = "*/*",
        ["Accept-Encoding"] = "gzip, deflate, br, zstd",
        ["Cookie"] = "token=@JWT@",
        ["Referer"] = "http://openwebui.test/",
        ["Sec-Fetch-Dest"] = "script",
        ["Sec-Fetch-Mode"] = "cors",
        ["Sec-Fetch-Site"] = "same-origin",
    }
    requests[1] = wrk.format("POST", "/api/chat/completions", script, completion)
    requests[2] = wrk.format("POST", "/api/chat/completions", streamed, stream)
    requests[3] = wrk.format("GET", "/_app/immutable/chunks/Bench0Load.js", browser)
end

request = function()
    next_request = next_request % #requests + 1
    return requests[next_request]
end

@DONE@
