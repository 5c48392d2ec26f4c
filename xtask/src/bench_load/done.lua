-- One line the benchmark parses (latencies in µs).
done = function(summary, latency, requests)
    io.write(string.format(
        "bench-load: requests=%d duration_us=%d p50_us=%d p99_us=%d connect_errors=%d read_errors=%d write_errors=%d status_errors=%d timeouts=%d\n",
        summary.requests, summary.duration, latency:percentile(50.0), latency:percentile(99.0),
        summary.errors.connect, summary.errors.read, summary.errors.write,
        summary.errors.status, summary.errors.timeout))
end
