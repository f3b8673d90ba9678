//! An image is stored whole when its last part is: the parts (1..=parts) are joined in order,
//! their length and SHA-256 must be what every part declared, and only then is the image a row
//! (and the parts' own copies of their bytes are let go: the signed envelopes keep them).

use tokio_postgres::Transaction;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Completion {
    /// Parts are still missing (or the image was stored before).
    Waiting,
    Stored,
    /// Every part is here and the joined bytes are not the image the parts declared.
    Mismatch,
}

pub async fn complete(
    tx: &Transaction<'_>,
    site: &str,
    gw: &str,
    media_id: &str,
) -> Result<Completion, tokio_postgres::Error> {
    let done = tx
        .query_opt("SELECT 1 FROM images WHERE site = $1 AND gw = $2 AND media_id = $3", &[&site, &gw, &media_id])
        .await?;
    if done.is_some() {
        return Ok(Completion::Waiting);
    }
    let rows = tx
        .query(
            "SELECT p.part, p.parts, p.size, p.sha256, p.mime, p.data, p.dev, m.consult, m.body -> 'media' -> 'meta'
             FROM media_parts p JOIN messages m ON m.id = p.message_id
             WHERE p.site = $1 AND p.gw = $2 AND p.media_id = $3 ORDER BY p.part",
            &[&site, &gw, &media_id],
        )
        .await?;
    let Some(first) = rows.first() else { return Ok(Completion::Waiting) };
    let parts: i32 = first.get(1);
    let size: i64 = first.get(2);
    let sha: String = first.get(3);
    let numbered_in_order = rows.iter().enumerate().all(|(i, r)| r.get::<_, i32>(0) == i as i32 + 1);
    if rows.len() != parts as usize || !numbered_in_order {
        return Ok(Completion::Waiting);
    }
    let same_claims =
        rows.iter().all(|r| r.get::<_, i32>(1) == parts && r.get::<_, i64>(2) == size && r.get::<_, String>(3) == sha);
    // The declared size is the gateway's claim: nothing is joined unless the parts' own lengths
    // make it.
    let data: Vec<&[u8]> = rows.iter().map(|r| r.get::<_, &[u8]>(5)).collect();
    let whole = same_claims && i64::try_from(data.iter().map(|d| d.len()).sum::<usize>()) == Ok(size);
    let bytes = if whole { data.concat() } else { Vec::new() };
    if !whole || spokegate::media::sha256_hex(&bytes) != sha {
        tracing::warn!(site, gw, media_id, "image parts do not join into the image they declared; not stored");
        return Ok(Completion::Mismatch);
    }
    let mime: String = first.get(4);
    let dev: Option<String> = first.get(6);
    let consult: Option<String> = first.get(7);
    let meta: Option<serde_json::Value> = rows.iter().find_map(|r| r.get::<_, Option<serde_json::Value>>(8));
    tx.execute(
        "INSERT INTO images (site, gw, media_id, dev, consult, mime, sha256, bytes, meta)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT DO NOTHING",
        &[&site, &gw, &media_id, &dev, &consult, &mime, &sha, &bytes, &meta],
    )
    .await?;
    // Joined, the parts' bytes are kept twice elsewhere: in the image, and in the signed envelopes
    // that prove it. A third copy is not kept.
    tx.execute(
        "UPDATE media_parts SET data = ''::bytea WHERE site = $1 AND gw = $2 AND media_id = $3",
        &[&site, &gw, &media_id],
    )
    .await?;
    Ok(Completion::Stored)
}
