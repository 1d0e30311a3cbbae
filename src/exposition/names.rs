//! Every metric name the exporter writes, once: the code that writes a
//! series and the code that reads it back (`diagnosis::evidence`, which
//! judges the exporter's own metrics) use these constants, and
//! `tests/names.rs` checks that the rules, the dashboard and the README
//! speak of these names only.

macro_rules! names {
    ($($(#[doc = $doc:literal])* $group:ident: [$($name:ident = $text:literal,)*])*) => {
        $($(
            pub const $name: &str = $text;
        )*)*
        /// Every name, in groups.
        pub const ALL: &[&str] = &[$($($name,)*)*];
    };
}

names! {
    /// The prober: one series per (site, path, address), or per site.
    prober: [
        PROBE_SUCCESS = "badgateway_probe_success",
        HTTP_STATUS_CODE = "badgateway_http_status_code",
        HTTP_DURATION_SECONDS = "badgateway_http_duration_seconds",
        PROBE_DURATION_SECONDS = "badgateway_probe_duration_seconds",
        PROBE_ERROR = "badgateway_probe_error",
        ICMP_PACKET_LOSS_RATIO = "badgateway_icmp_packet_loss_ratio",
        ICMP_RTT_SECONDS = "badgateway_icmp_rtt_seconds",
        ICMP_SILENT = "badgateway_icmp_silent",
        TCP_PACKET_LOSS_RATIO = "badgateway_tcp_packet_loss_ratio",
        TCP_RTT_SECONDS = "badgateway_tcp_rtt_seconds",
        PROBES_TOTAL = "badgateway_probes_total",
        PROBE_FAILURES_TOTAL = "badgateway_probe_failures_total",
        FORWARDING_FAILURES_TOTAL = "badgateway_forwarding_failures_total",
        TLS_EARLIEST_CERT_EXPIRY_TIMESTAMP_SECONDS = "badgateway_tls_earliest_cert_expiry_timestamp_seconds",
        PATH_ECHOES_SENT_TOTAL = "badgateway_path_echoes_sent_total",
        PATH_ECHOES_LOST_TOTAL = "badgateway_path_echoes_lost_total",
        ORIGIN_ADMITS_PROBER = "badgateway_origin_admits_prober",
        FORWARDING_IP_BLOCKED = "badgateway_forwarding_ip_blocked",
        ORIGIN_IDLE_TIMEOUT_SECONDS = "badgateway_origin_idle_timeout_seconds",
        ORIGIN_KEEPALIVE_MISMATCH = "badgateway_origin_keepalive_mismatch",
        PROXY_IDLE_TIMEOUT_SECONDS = "badgateway_proxy_idle_timeout_seconds",
        PATH_HOP_LOSS_RATIO = "badgateway_path_hop_loss_ratio",
        PATH_LOSS_START_HOP = "badgateway_path_loss_start_hop",
        PATH_ROUTE_ID = "badgateway_path_route_id",
        PATH_TRACE_TIMESTAMP_SECONDS = "badgateway_path_trace_timestamp_seconds",
        LAST_ROUND_TIMESTAMP_SECONDS = "badgateway_last_round_timestamp_seconds",
        PROXY_ADDRESSES = "badgateway_proxy_addresses",
        PROXY_DNS_SUCCESS = "badgateway_proxy_dns_success",
        PROXY_DNS_NEXT_RESOLUTION_TIMESTAMP_SECONDS = "badgateway_proxy_dns_next_resolution_timestamp_seconds",
        VANTAGE_UP = "badgateway_vantage_up",
    ]
    /// The origin agent.
    agent: [
        AGENT_SITE_INFO = "badgateway_agent_site_info",
        AGENT_FORWARDING_RANGES = "badgateway_agent_forwarding_ranges",
        HOST_CPU_USAGE_RATIO = "badgateway_host_cpu_usage_ratio",
        HOST_MEMORY_USAGE_RATIO = "badgateway_host_memory_usage_ratio",
        HOST_SATURATED_SECONDS = "badgateway_host_saturated_seconds",
        HOST_LOAD1 = "badgateway_host_load1",
        HOST_LOAD5 = "badgateway_host_load5",
        HOST_LOAD15 = "badgateway_host_load15",
        HOST_CPUS = "badgateway_host_cpus",
        NETWORK_RECEIVE_BYTES_TOTAL = "badgateway_network_receive_bytes_total",
        NETWORK_TRANSMIT_BYTES_TOTAL = "badgateway_network_transmit_bytes_total",
        NETWORK_CAPACITY_BYTES_PER_SECOND = "badgateway_network_capacity_bytes_per_second",
        NETWORK_USAGE_RATIO = "badgateway_network_usage_ratio",
        NETWORK_SATURATED_SECONDS = "badgateway_network_saturated_seconds",
        PROCESS_UP = "badgateway_process_up",
        PROCESSES = "badgateway_processes",
        WEB_PORT_LISTENING = "badgateway_web_port_listening",
        CONNECTIONS = "badgateway_connections",
        CONNECTIONS_HALF_OPEN = "badgateway_connections_half_open",
        FIREWALL_VERDICT = "badgateway_firewall_verdict",
        FIREWALL_PORT_VERDICT = "badgateway_firewall_port_verdict",
        FIREWALL_FORWARDING_RANGE_BLOCKED = "badgateway_firewall_forwarding_range_blocked",
        FIREWALL_FORWARDING_RANGES = "badgateway_firewall_forwarding_ranges",
        FIREWALL_RULES = "badgateway_firewall_rules",
        FIREWALL_EVALUATION_TIMESTAMP_SECONDS = "badgateway_firewall_evaluation_timestamp_seconds",
        ACCESS_LOG_LINES_TOTAL = "badgateway_access_log_lines_total",
        ACCESS_LOG_MALFORMED_LINES_TOTAL = "badgateway_access_log_malformed_lines_total",
        ACCESS_LOG_RESPONSES_TOTAL = "badgateway_access_log_responses_total",
        ACCESS_LOG_ROTATIONS_TOTAL = "badgateway_access_log_rotations_total",
    ]
    /// The exporter itself.
    exporter: [
        BUILD_INFO = "badgateway_build_info",
        CONFIG_LAST_RELOAD_SUCCESSFUL = "badgateway_config_last_reload_successful",
        CONFIG_LAST_RELOAD_SUCCESS_TIMESTAMP_SECONDS = "badgateway_config_last_reload_success_timestamp_seconds",
        SITES = "badgateway_sites",
        COLLECTOR_SUCCESS = "badgateway_collector_success",
        COLLECTOR_DURATION_SECONDS = "badgateway_collector_duration_seconds",
        EXPORTER_WEB_CONNECTIONS = "badgateway_exporter_web_connections",
        EXPORTER_WEB_CONNECTIONS_REFUSED_TOTAL = "badgateway_exporter_web_connections_refused_total",
        EXPORTER_WEB_SCRAPES_REFUSED_TOTAL = "badgateway_exporter_web_scrapes_refused_total",
    ]
}
