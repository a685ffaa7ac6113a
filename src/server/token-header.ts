/** Request header carrying the session token (shared by the server's guard and the page's API client). */
export const TOKEN_HEADER = "x-circuitscope-token";
