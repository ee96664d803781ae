#include "relay/registry.h"

#include <algorithm>
#include <string>

namespace derpkit::relay {

void Registry::Register(const derp::PeerPresent& presence, int shard, std::uint64_t conn_id) {
  std::lock_guard lock(mu_);
  auto it = keys_.try_emplace(presence.key).first;
  Entry& entry = it->second;
  const std::size_t before = entry.members.size();
  entry.members.push_back(Member{shard, conn_id, ++seq_, presence});
  entry.active_conn_id = conn_id;
  if (before == 1) {
    ++dup_keys_;
    dup_conns_ += 2;
    total_dup_conns_ += 1;
  } else if (before > 1) {
    dup_conns_ += 1;
    total_dup_conns_ += 1;
  }
  // derper tells watchers about every new connection, duplicates included.
  TellWatchersLocked(presence.key, presence);
  PublishLocked(it, true);
}

void Registry::Unregister(const derp::PublicKey& key, std::uint64_t conn_id) {
  std::lock_guard lock(mu_);
  RemoveWatcherLocked(conn_id);
  auto it = keys_.find(key);
  if (it == keys_.end()) return;
  Entry& entry = it->second;
  auto member = std::find_if(entry.members.begin(), entry.members.end(),
                             [&](const Member& m) { return m.conn_id == conn_id; });
  if (member == entry.members.end()) return;
  const std::size_t before = entry.members.size();
  entry.members.erase(member);
  if (before == 2) {
    --dup_keys_;
    dup_conns_ -= 2;
  } else if (before > 2) {
    dup_conns_ -= 1;
  }
  if (entry.members.empty()) {
    entry.active_conn_id = 0;
    // Watchers hear only about local connections: the last one is gone.
    TellWatchersLocked(key, std::nullopt);
  } else if (entry.active_conn_id == conn_id) {
    // The remaining member that most recently connected or sent takes over.
    const auto next = std::max_element(
        entry.members.begin(), entry.members.end(),
        [](const Member& a, const Member& b) { return a.last_activity < b.last_activity; });
    entry.active_conn_id = next->conn_id;
  }
  PublishLocked(it, true);
}

void Registry::Move(const derp::PublicKey& key, std::uint64_t conn_id, int shard) {
  std::lock_guard lock(mu_);
  auto it = keys_.find(key);
  if (it == keys_.end()) return;
  for (Member& m : it->second.members) {
    if (m.conn_id == conn_id) m.shard = shard;
  }
  // The route names the new shard; and a duplicate state sent to the old shard while the
  // connection was between shards found nobody, so duplicates hear theirs again.
  PublishLocked(it, false);
}

void Registry::NoteActivity(const derp::PublicKey& key, std::uint64_t conn_id) {
  std::lock_guard lock(mu_);
  auto it = keys_.find(key);
  if (it == keys_.end()) return;
  Entry& entry = it->second;
  for (Member& m : entry.members) {
    if (m.conn_id == conn_id) m.last_activity = ++seq_;
  }
  if (entry.active_conn_id == conn_id) return;
  entry.active_conn_id = conn_id;
  PublishLocked(it, false);
}

void Registry::AddForwarder(const derp::PublicKey& key, int shard, std::uint64_t link_id) {
  std::lock_guard lock(mu_);
  auto it = keys_.try_emplace(key).first;
  Entry& entry = it->second;
  for (const Forwarder& f : entry.forwarders) {
    if (f.link_id == link_id) return;
  }
  entry.forwarders.push_back(Forwarder{shard, link_id});
  if (entry.forwarders.size() == 2) ++multiforwarder_created_;
  PublishLocked(it, false);
}

void Registry::RemoveForwarder(const derp::PublicKey& key, std::uint64_t link_id) {
  std::lock_guard lock(mu_);
  auto it = keys_.find(key);
  if (it == keys_.end()) {
    ++forwarder_delete_other_;
    return;
  }
  auto& fw = it->second.forwarders;
  auto f =
      std::find_if(fw.begin(), fw.end(), [&](const Forwarder& x) { return x.link_id == link_id; });
  if (f == fw.end()) {
    ++forwarder_delete_other_;
    return;
  }
  if (fw.size() == 2) ++multiforwarder_deleted_;
  fw.erase(f);
  PublishLocked(it, false);
}

void Registry::RemoveAllForwarders(std::uint64_t link_id) {
  std::lock_guard lock(mu_);
  std::vector<derp::PublicKey> affected;
  for (auto& [key, entry] : keys_) {
    for (const Forwarder& f : entry.forwarders) {
      if (f.link_id == link_id) affected.push_back(key);
    }
  }
  for (const auto& key : affected) {
    auto it = keys_.find(key);
    auto& fw = it->second.forwarders;
    if (fw.size() == 2) ++multiforwarder_deleted_;
    fw.erase(std::remove_if(fw.begin(), fw.end(),
                            [&](const Forwarder& x) { return x.link_id == link_id; }),
             fw.end());
    PublishLocked(it, false);
  }
}

void Registry::AddWatcher(int shard, std::uint64_t conn_id) {
  std::lock_guard lock(mu_);
  for (const auto& [key, entry] : keys_) {
    for (const Member& m : entry.members) {
      if (m.conn_id == entry.active_conn_id) {
        listener_.NotifyWatcher(shard, conn_id, key, m.presence);
      }
    }
  }
  watchers_.push_back(Watcher{shard, conn_id});
}

void Registry::RemoveWatcher(std::uint64_t conn_id) {
  std::lock_guard lock(mu_);
  RemoveWatcherLocked(conn_id);
}

void Registry::RemoveWatcherLocked(std::uint64_t conn_id) {
  watchers_.erase(std::remove_if(watchers_.begin(), watchers_.end(),
                                 [&](const Watcher& w) { return w.conn_id == conn_id; }),
                  watchers_.end());
}

std::size_t Registry::CloseKey(const derp::PublicKey& key) {
  std::lock_guard lock(mu_);
  auto it = keys_.find(key);
  if (it == keys_.end()) return 0;
  for (const Member& m : it->second.members) listener_.CloseConnection(m.shard, m.conn_id);
  return it->second.members.size();
}

void Registry::TellWatchersLocked(const derp::PublicKey& key,
                                  const std::optional<derp::PeerPresent>& present) {
  for (const Watcher& w : watchers_) listener_.NotifyWatcher(w.shard, w.conn_id, key, present);
}

void Registry::PublishLocked(
    std::unordered_map<derp::PublicKey, Entry, derp::PublicKeyHash>::iterator it,
    bool membership_changed) {
  const derp::PublicKey key = it->first;
  Entry& entry = it->second;
  ConnRoute route;
  for (const Member& m : entry.members) {
    if (m.conn_id == entry.active_conn_id) route = ConnRoute{m.shard, m.conn_id, false};
  }
  if (route.id == 0 && !entry.forwarders.empty()) {
    route = ConnRoute{entry.forwarders.front().shard, entry.forwarders.front().link_id, true};
  }
  listener_.BroadcastRoute(key, route);
  const bool dup = entry.members.size() > 1;
  // A single connection needs to hear only that it is no longer a duplicate.
  if (dup || membership_changed) {
    for (const Member& m : entry.members) {
      listener_.NotifyDupState(m.shard, m.conn_id, dup, m.conn_id == entry.active_conn_id);
    }
  }
  if (route.id == 0) {
    keys_.erase(it);
    listener_.BroadcastKeyGone(key);
  }
}

Registry::Reach Registry::Lookup(const derp::PublicKey& key) const {
  std::lock_guard lock(mu_);
  auto it = keys_.find(key);
  if (it == keys_.end()) return Reach::kNone;
  return it->second.members.empty() ? Reach::kMesh : Reach::kLocal;
}

Registry::Totals Registry::GetTotals() const {
  std::lock_guard lock(mu_);
  Totals t;
  for (const auto& [key, entry] : keys_) {
    if (!entry.members.empty()) {
      ++t.keys_local;
    } else if (!entry.forwarders.empty()) {
      ++t.keys_remote;
    }
  }
  t.dup_keys = dup_keys_;
  t.dup_conns = dup_conns_;
  t.total_dup_conns = total_dup_conns_;
  t.watchers = static_cast<std::int64_t>(watchers_.size());
  t.multiforwarder_created = multiforwarder_created_;
  t.multiforwarder_deleted = multiforwarder_deleted_;
  t.forwarder_delete_other = forwarder_delete_other_;
  return t;
}

bool Registry::CheckConsistency(std::string* problems) const {
  std::lock_guard lock(mu_);
  bool ok = true;
  for (const auto& [key, entry] : keys_) {
    if (entry.members.empty()) {
      if (entry.forwarders.empty()) {
        ok = false;
        if (problems) problems->append("key " + key.ShortString() + " has no route\n");
      }
      continue;
    }
    const auto active = std::count_if(entry.members.begin(), entry.members.end(),
                                      [&](auto& m) { return m.conn_id == entry.active_conn_id; });
    if (active != 1) {
      ok = false;
      if (problems) problems->append("key " + key.ShortString() + " has no single active conn\n");
    }
  }
  return ok;
}

}  // namespace derpkit::relay
