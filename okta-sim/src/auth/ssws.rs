//! `Authorization: SSWS <token>`: Okta API tokens. They act with every scope of their admin.

use super::AuthBook;

pub fn is_valid(book: &AuthBook, token: &str) -> bool {
    !token.is_empty() && book.api_tokens.contains(token)
}
