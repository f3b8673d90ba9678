// Node-RED as a peer for `cargo bench --bench peers`: no editor, no HTTP, the flow in flows.json,
// Node's crypto module for the function node. SERIAL_PATH and BROKER_PORT come from the
// environment (flows.json refers to them as ${SERIAL_PATH} and ${BROKER_PORT}).
module.exports = {
    flowFile: "flows.json",
    credentialSecret: false,
    httpAdminRoot: false,
    httpNodeRoot: false,
    uiPort: Number(process.env.NODE_RED_PORT || 0),
    uiHost: "127.0.0.1",
    functionGlobalContext: { crypto: require("crypto") },
    logging: { console: { level: "warn", metrics: false, audit: false } },
    editorTheme: { tours: false },
    telemetry: { enabled: false },
    diagnostics: { enabled: false },
    runtimeState: { enabled: false },
    externalModules: { autoInstall: false, palette: { allowInstall: false } },
};
