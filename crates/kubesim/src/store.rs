//! Object storage: one global resourceVersion counter, objects per
//! group/resource, a bounded event history for watches that resume from an
//! older resourceVersion, and a broadcast channel for live watchers.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use serde_json::{Value, json};
use tokio::sync::broadcast;

use crate::discovery::{self, ResourceInfo};

/// One change, as delivered to watchers.
#[derive(Debug)]
pub struct WatchEvent {
    pub rv: u64,
    /// `group/plural`
    pub key: String,
    pub namespace: String,
    pub etype: &'static str,
    pub object: Value,
    /// The object before a MODIFIED change, so selector watches can turn it
    /// into ADDED/DELETED when it starts or stops matching.
    pub previous: Option<Value>,
}

/// A finite address range, like kube-apiserver's `--service-cluster-ip-range`.
#[derive(Debug)]
pub struct IpPool {
    base: u32,
    size: u32,
    used: HashSet<u32>,
    next: u32,
}

impl IpPool {
    pub fn new(cidr: &str) -> Self {
        let (addr, bits) = cidr.split_once('/').unwrap_or((cidr, "16"));
        let ip: std::net::Ipv4Addr = addr
            .parse()
            .unwrap_or(std::net::Ipv4Addr::new(10, 43, 0, 0));
        let bits: u32 = bits.parse().unwrap_or(16).clamp(8, 30);
        let size = 1u32 << (32 - bits);
        Self {
            base: u32::from(ip) & !(size - 1),
            size,
            used: HashSet::new(),
            next: 2,
        }
    }

    fn fmt(&self, off: u32) -> String {
        std::net::Ipv4Addr::from(self.base + off).to_string()
    }

    /// Allocates the next free address (skipping network, `.1` and broadcast).
    pub fn allocate(&mut self) -> Option<String> {
        for _ in 0..self.size {
            let off = self.next;
            self.next = if self.next + 2 >= self.size {
                2
            } else {
                self.next + 1
            };
            if off >= 2 && off < self.size - 1 && self.used.insert(off) {
                return Some(self.fmt(off));
            }
        }
        None
    }

    /// Reserves a specific address; `Err` if outside the range or taken.
    pub fn reserve(&mut self, ip: &str) -> Result<(), &'static str> {
        let parsed: std::net::Ipv4Addr = ip.parse().map_err(|_| "must be a valid IP")?;
        let v = u32::from(parsed);
        if v < self.base || v >= self.base + self.size {
            return Err("provided IP is not in the valid range");
        }
        if !self.used.insert(v - self.base) {
            return Err("provided IP is already allocated");
        }
        Ok(())
    }

    pub fn release(&mut self, ip: &str) {
        if let Ok(parsed) = ip.parse::<std::net::Ipv4Addr>() {
            self.used
                .remove(&(u32::from(parsed).wrapping_sub(self.base)));
        }
    }
}

pub struct Inner {
    pub rv: u64,
    objects: HashMap<String, BTreeMap<(String, String), Value>>,
    history: VecDeque<Arc<WatchEvent>>,
    history_cap: usize,
    pub resources: Vec<ResourceInfo>,
    pub ips: IpPool,
    pub node_ports: HashSet<u16>,
    tx: broadcast::Sender<Arc<WatchEvent>>,
}

pub struct Store {
    inner: Mutex<Inner>,
    tx: broadcast::Sender<Arc<WatchEvent>>,
}

fn obj_ns(obj: &Value) -> String {
    obj["metadata"]["namespace"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

fn obj_name(obj: &Value) -> String {
    obj["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

impl Store {
    pub fn new(service_cidr: &str, history_cap: usize) -> Self {
        let (tx, _) = broadcast::channel(4096);
        Self {
            inner: Mutex::new(Inner {
                rv: 1,
                objects: HashMap::new(),
                history: VecDeque::new(),
                history_cap,
                resources: discovery::builtins(),
                ips: IpPool::new(service_cidr),
                node_ports: HashSet::new(),
                tx: tx.clone(),
            }),
            tx,
        }
    }

    pub fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Arc<WatchEvent>> {
        self.tx.subscribe()
    }
}

impl Inner {
    pub fn find(&self, group: &str, version: &str, plural: &str) -> Option<ResourceInfo> {
        self.resources
            .iter()
            .find(|r| r.group == group && r.version == version && r.plural == plural)
            .cloned()
    }

    pub fn get(&self, key: &str, ns: &str, name: &str) -> Option<&Value> {
        self.objects
            .get(key)?
            .get(&(ns.to_string(), name.to_string()))
    }

    /// All objects of a group/resource, ordered by namespace then name.
    pub fn all(&self, key: &str) -> impl Iterator<Item = &Value> {
        self.objects.get(key).into_iter().flat_map(|m| m.values())
    }

    pub fn namespace_exists(&self, ns: &str) -> bool {
        self.get("/namespaces", "", ns).is_some()
    }

    fn emit(&mut self, ev: WatchEvent) {
        let ev = Arc::new(ev);
        self.history.push_back(ev.clone());
        while self.history.len() > self.history_cap {
            self.history.pop_front();
        }
        // No receivers is fine: nobody is watching.
        let _ = self.tx.send(ev);
    }

    /// Stores `obj` with a new resourceVersion and notifies watchers.
    pub fn put(&mut self, res: &ResourceInfo, mut obj: Value, etype: &'static str) -> Value {
        self.rv += 1;
        let rv = self.rv;
        obj["metadata"]["resourceVersion"] = json!(rv.to_string());
        let (ns, name) = (obj_ns(&obj), obj_name(&obj));
        let previous = self
            .objects
            .entry(res.key())
            .or_default()
            .insert((ns.clone(), name), obj.clone());
        self.emit(WatchEvent {
            rv,
            key: res.key(),
            namespace: ns,
            etype,
            object: obj.clone(),
            previous,
        });
        obj
    }

    /// Removes an object, notifying watchers with the deletion's resourceVersion.
    pub fn remove(&mut self, key: &str, ns: &str, name: &str) -> Option<Value> {
        let mut obj = self
            .objects
            .get_mut(key)?
            .remove(&(ns.to_string(), name.to_string()))?;
        self.rv += 1;
        let rv = self.rv;
        obj["metadata"]["resourceVersion"] = json!(rv.to_string());
        if key == "/services" {
            for ip in obj["spec"]["clusterIPs"].as_array().into_iter().flatten() {
                if let Some(ip) = ip.as_str() {
                    self.ips.release(ip);
                }
            }
            for p in obj["spec"]["ports"].as_array().into_iter().flatten() {
                if let Some(np) = p["nodePort"].as_u64() {
                    self.node_ports.remove(&(np as u16));
                }
            }
        }
        self.emit(WatchEvent {
            rv,
            key: key.to_string(),
            namespace: ns.to_string(),
            etype: "DELETED",
            object: obj.clone(),
            previous: None,
        });
        Some(obj)
    }

    /// Keys of every stored object in a namespace: `(group/plural, name)`.
    pub fn keys_in_namespace(&self, ns: &str) -> Vec<(String, String)> {
        self.objects
            .iter()
            .flat_map(|(k, m)| {
                m.keys()
                    .filter(|(n, _)| n == ns)
                    .map(move |(_, name)| (k.clone(), name.clone()))
            })
            .collect()
    }

    /// Every stored object as `(group/plural, namespace, name, object)`.
    pub fn every(&self) -> Vec<(String, String, String, &Value)> {
        self.objects
            .iter()
            .flat_map(|(k, m)| {
                m.iter()
                    .map(move |((ns, n), v)| (k.clone(), ns.clone(), n.clone(), v))
            })
            .collect()
    }

    /// Events after `rv` for replay, or `None` if history no longer reaches back that far.
    pub fn events_since(&self, rv: u64) -> Option<Vec<Arc<WatchEvent>>> {
        if rv >= self.rv {
            return Some(Vec::new());
        }
        let oldest = self.history.front().map(|e| e.rv).unwrap_or(self.rv + 1);
        if rv + 1 < oldest {
            return None;
        }
        Some(self.history.iter().filter(|e| e.rv > rv).cloned().collect())
    }
}
