//! Collection and vector names, in one place: every collection the services create, and the
//! vector slots they share. Dense slots are named per model by `embed::DenseSpace`.

/// Conversations, one point per conversation.
pub(crate) const CONVERSATIONS: &str = "chat_conversations";
/// Messages, one point per message.
pub(crate) const MESSAGES: &str = "chat_messages";
/// AWS resources, one point per resource.
pub(crate) const ESTATE: &str = "aws_estate";
/// Small records about the store itself (the embedding model, the sealed tag dictionary).
pub(crate) const META: &str = "store_meta";
/// Sparse keyword vector slot (keyed BM25 tokens), in messages and resources alike.
pub(crate) const KEYWORDS_VECTOR: &str = "keywords";
