//! `keys status` and `keys rotate`.

use cloudops_storage_service::{ConfigKey, StorageConfig, StorageService};

use crate::args::KeysCommand;
use crate::output::{self, Output};

pub(crate) async fn run(cmd: &KeysCommand, config: StorageConfig, out: Output) -> anyhow::Result<()> {
    let mut target = config.clone();
    let service = StorageService::open(config).await?;
    let result = match cmd {
        KeysCommand::Status => Ok(service.key_status()),
        KeysCommand::Rotate { to, to_key_file } => {
            if let Some(to) = to {
                target.set(ConfigKey::KeySource, to)?;
            } else {
                target.keys.source = service.key_status().key_source;
            }
            if let Some(file) = to_key_file {
                target.set(ConfigKey::KeyFile, &file.display().to_string())?;
            }
            service.rotate_kek(target.keys).await
        }
    };
    service.shutdown().await?;
    let status = result?;
    out.emit(&status, |s| {
        println!("store id       {}", s.store_id);
        println!("key source     {} ({})", s.key_source, s.key_location);
        println!("active key id  {}", s.active_key_id);
        println!("data keys      {}", s.data_keys);
        println!("created        {}", output::time(s.created_at_ms));
        match s.kek_rotated_at_ms {
            Some(t) => println!("KEK rotated    {}", output::time(t)),
            None => println!("KEK rotated    never"),
        }
    })
}
