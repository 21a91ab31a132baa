"""/api/tokens: API tokens for scripts (Bearer), created with the device's password."""

from __future__ import annotations

from smsnodes_hub.api.openapi.builders import (
    BASIC_ONLY,
    NOT_AN_OBJECT,
    TOKEN_LOGIN,
    Json,
    auth_errors,
    curl,
    error,
    not_found,
    ok,
    operation,
    param,
    request,
    too_large,
)
from smsnodes_hub.auth.tokens import MAX_API_TOKENS, MAX_NAME

TAG = {"name": "Tokens", "description": "Extension: API tokens for scripts."}
TOKEN_INFO = {"id": 7, "kind": "api", "name": "billing script",
              "createdAt": "2026-11-21T09:00:00.000Z",
              "lastUsedAt": "2026-11-21T10:00:00.120Z"}


def _create_token(base: str) -> Json:
    return operation(
        "Tokens", "createToken", "Create an API token",
        "Extension. A long-lived credential for scripts, used as "
        "`Authorization: Bearer <token>` wherever Basic works (except here: creating a "
        "token needs the password). The secret is shown in this answer only. Every "
        f"token dies when the password changes; a device has at most {MAX_API_TOKENS}.",
        security=BASIC_ONLY,
        body=request("Optional; may be empty.", "CreateTokenRequest",
                     ("named", "A named token", {"name": "billing script"}),
                     ("unnamed", "No name", {}), required=False),
        responses={
            "201": ok("Created.", "NewToken", (
                "created", "The new token", {**TOKEN_INFO, "lastUsedAt": None,
                                             "token": "snh_tQ9mX2vL7bR4nK8wZ1cH5jP3sD6fG0aY"})),
            "400": error("The body is not a JSON object, or `name` is not a string.",
                         ("Bad name", "name must be a string"),
                         ("Not a JSON object", NOT_AN_OBJECT)),
            "409": error("The name is empty or too long, the password just changed, or "
                         "the device has too many tokens.",
                         ("Bad name", f"name must be 1 to {MAX_NAME} characters"),
                         ("Too many", "cannot create a token: the credentials changed, or "
                                      f"the device has {MAX_API_TOKENS} tokens already "
                                      "(revoke some)")),
            "413": too_large(),
            **auth_errors(password_only=True),
        },
        curl=curl(f"{base}/api/tokens", method="POST", data={"name": "billing script"},
                  data_apart=True),
    )


def paths(base: str) -> Json:
    return {
        "/api/tokens": {
            "post": _create_token(base),
            "get": operation(
                "Tokens", "listTokens", "List API tokens",
                "Extension. The device's API tokens, without their secrets.",
                responses={"200": ok("The tokens.", "TokenList",
                                     ("tokens", "One token", {"data": [TOKEN_INFO]}))},
                curl=curl(f"{base}/api/tokens", login=TOKEN_LOGIN),
            ),
        },
        "/api/tokens/{id}": {"delete": operation(
            "Tokens", "revokeToken", "Revoke a token",
            "Extension. The token stops working at once, in every hub process: cached "
            "logins end, and a phone connected with that session token is disconnected.",
            parameters=[param("TokenId")],
            responses={
                "200": ok("Revoked.", "RevokedToken",
                          ("revoked", "Revoked", {"id": 7, "revoked": True})),
                "404": not_found("No such token of this device.", "Token 7 not found"),
            },
            curl=curl(f"{base}/api/tokens/7", method="DELETE"),
        )},
    }
