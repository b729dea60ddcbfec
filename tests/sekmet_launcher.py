"""Start sekmet-fhir (a real FHIR R4 server) on 127.0.0.1 for the tests. Runs in sekmet's own venv.

sekmet 0.1.1 has no DetectedIssue search parameters, so conditional update by identifier would fail;
this launcher registers them (identifier, patient, status, code, implicated, identified) before start.

    python sekmet_launcher.py PORT DATA_DIR [SERVER_AUTH_JSON] [--no-detectedissue-params]
"""

import json
import os
import sys


def main() -> None:
    port, data = int(sys.argv[1]), sys.argv[2]
    extra = [a for a in sys.argv[3:] if not a.startswith("--")]
    server_auth = json.loads(extra[0]) if extra else None
    from sekmet.fhir import search_params as sp

    if "--no-detectedissue-params" not in sys.argv:
        sp.PARAMS["DetectedIssue"] = {
            p.name: p
            for p in [
                sp.SearchParam("identifier", "token", ("identifier",)),
                sp.SearchParam("patient", "reference", ("patient",), "Patient"),
                sp.SearchParam("status", "token", ("status",)),
                sp.SearchParam("code", "token", ("code",)),
                sp.SearchParam("implicated", "reference", ("implicated",)),
                sp.SearchParam("identified", "date", ("identifiedDateTime",)),
            ]
        }
    settings = {
        "base_url": f"http://127.0.0.1:{port}/fhir",
        "host": "127.0.0.1",
        "port": port,
        "data_dir": data,
        "simulator": {"enabled": False},
        "log_inbound": False,
        "own_private_key_path": os.path.join(data, "sekmet_private.pem"),
    }
    if server_auth:
        settings["server_auth"] = server_auth
    config = os.path.join(data, "settings.json")  # JSON is YAML
    with open(config, "w") as fh:
        json.dump(settings, fh)
    os.environ["SEKMET_CONFIG"] = config
    from sekmet.config import load_settings

    load_settings(config)
    import uvicorn

    uvicorn.run("sekmet.main:app_factory", factory=True, host="127.0.0.1", port=port, log_level="warning")


if __name__ == "__main__":
    main()
