//! A judge built for a future, incompatible `engram:plugin@0.2.0`.
wit_bindgen::generate!({
    inline: "
        package engram:plugin@0.2.0;
        interface judging { judge: func(query: string, ids: list<string>) -> list<bool>; }
        world judge { export judging; }
    ",
});
struct P;
impl exports::engram::plugin::judging::Guest for P {
    fn judge(_q: String, ids: Vec<String>) -> Vec<bool> {
        ids.iter().map(|_| true).collect()
    }
}
export!(P);
