#!/bin/sh
# Image entrypoint. The first argument, else $SERVICE, picks what runs:
#   intake | router | metrics   the service (python -m services.<name>)
#   migrate                     ticketctl migrate (one-shot)
#   anything else               run as given (e.g. ticketctl keys create ops --role admin)
set -eu

if [ "$#" -eq 0 ] && [ -n "${SERVICE:-}" ]; then
    set -- "$SERVICE"
fi
if [ "$#" -eq 0 ]; then
    echo "usage: <intake|router|metrics|migrate|command ...> (or set SERVICE)" >&2
    exit 64
fi

case "$1" in
    intake|router|metrics)
        service="$1"
        shift
        exec python -m "services.$service" "$@"
        ;;
    migrate)
        shift
        exec ticketctl migrate "$@"
        ;;
    *)
        exec "$@"
        ;;
esac
