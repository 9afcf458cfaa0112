"""moto's server on one thread, for the scale bench's durable run.

`moto_server` answers requests on many threads, and its DynamoDB and SQS backends are
not safe for that: under the bench's load concurrent requests race ("dictionary
changed size during iteration", answered 400) and the sync stalls. One thread serves
them one at a time, slowly but right.

    .venv/bin/python scripts/moto_one_thread.py 5000 &
    SCALE_MOTO_URL=http://127.0.0.1:5000 cargo bench -p crmsync-shared --bench scale
"""

import sys

from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
from werkzeug.serving import run_simple

if __name__ == "__main__":
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 5000
    app = DomainDispatcherApplication(create_backend_app)
    run_simple("127.0.0.1", port, app, threaded=False)
