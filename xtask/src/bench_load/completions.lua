-- `cargo xtask bench-load`, completions: every request is a non-streamed chat completion
-- as a script sends it with a user's session JWT (fixtures/openwebui/script_jwt.pcap).
-- @JWT@ is filled in by the benchmark.
wrk.method = "POST"
wrk.path = "/api/chat/completions"
wrk.headers["User-Agent"] = "python-requests/2.32.3"
wrk.headers["Accept"] = "*/*"
wrk.headers["Authorization"] = "Bearer @JWT@"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"model":"mock-gpt","messages":[{"role":"user","content":"Script JWT non-streaming question"}]}'

@DONE@
